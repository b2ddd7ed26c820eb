//! `key list`: filters on attributes and references, and pages.

use super::{
    Actor, AttrName, Key, KeyRef, KeyView, Keys, MAX_REQUEST_ATTRIBUTES, MAX_VALUE_CHARS,
    attributes::{at_most, flag},
    class_name, kind_name,
    rules::sees,
    truncate, view,
};
use crate::model::{Action, ModelError};

/// A listing query.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    /// `attr.NAME=VALUE` filters (as name/value) and `key-reference=0x...`.
    pub filters: Vec<(String, String)>,
    /// 0 means no limit.
    pub max_items: usize,
    /// From a previous page's `next_token`.
    pub starting_token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    pub total: usize,
    pub next_token: Option<String>,
}

impl Keys {
    /// The keys `actor` may see, filtered and paged. Crypto users see their
    /// own keys, keys shared with them and every public key; admins see all.
    pub fn list(&self, actor: Actor<'_>, query: &KeyQuery) -> Result<KeyPage, ModelError> {
        at_most("filter", query.filters.len(), MAX_REQUEST_ATTRIBUTES)?;
        let mut filters = Vec::with_capacity(query.filters.len());
        for (name, value) in &query.filters {
            if value.len() > MAX_VALUE_CHARS * 4 || value.chars().count() > MAX_VALUE_CHARS {
                return Err(ModelError::InvalidArgument {
                    field: "filter",
                    rule: format!("a filter value must be at most {MAX_VALUE_CHARS} characters"),
                });
            }
            if name == "key-reference" {
                filters.push(Filter::Reference(KeyRef::parse("filter", value)?));
            } else {
                let attr = name.strip_prefix("attr.").ok_or_else(|| ModelError::InvalidArgument {
                    field: "filter",
                    rule: format!("{:?}: use attr.NAME=VALUE or key-reference=0x...", truncate(name)),
                })?;
                filters.push(Filter::Attribute(AttrName::parse("filter", attr)?, value.clone()));
            }
        }
        let start = match &query.starting_token {
            None => None,
            Some(token) => Some(KeyRef::parse("starting_token", token)?),
        };
        let first = start.unwrap_or(KeyRef(0));
        let limit = if query.max_items == 0 { usize::MAX } else { query.max_items };
        let sees_every_key = actor.may(Action::SeeEveryKey);
        if sees_every_key && filters.is_empty() {
            // Every key matches: count without walking them.
            let mut rest = self.keys.range(first..);
            let keys = rest.by_ref().take(limit).map(|(r, k)| view(*r, k)).collect();
            let next_token = rest.next().map(|(r, _)| r.to_string());
            return Ok(KeyPage { keys, total: self.keys.len(), next_token });
        }
        // Where matches can be: the one key named, the keys of the label
        // asked for (through the index), or else every key. In reference
        // order, as pages are.
        let named = filters.iter().find_map(|f| match f {
            Filter::Reference(r) => Some(vec![*r]),
            Filter::Attribute(AttrName::Label, label) => Some(self.index.labelled(label)),
            Filter::Attribute(..) => None,
        });
        let candidates: Box<dyn Iterator<Item = (KeyRef, &Key)>> = match named {
            Some(refs) => Box::new(refs.into_iter().filter_map(|r| self.keys.get(&r).map(|k| (r, k)))),
            None => Box::new(self.keys.iter().map(|(r, k)| (*r, k))),
        };
        let mut page = KeyPage { keys: Vec::new(), total: 0, next_token: None };
        for (reference, key) in candidates {
            if !(sees_every_key || sees(actor.user, key)) || !filters.iter().all(|f| f.matches(reference, key)) {
                continue;
            }
            // Every match counts towards the total; only a page is shown.
            page.total += 1;
            if reference < first || page.next_token.is_some() {
                continue;
            }
            if page.keys.len() < limit {
                page.keys.push(view(reference, key));
            } else {
                page.next_token = Some(reference.to_string());
            }
        }
        Ok(page)
    }
}

enum Filter {
    Reference(KeyRef),
    Attribute(AttrName, String),
}

impl Filter {
    /// Reads what it can off the attributes, type and class, so that a
    /// filter over many keys neither allocates nor parses key material for
    /// each; only the facts read off the material (check value, sizes, EC
    /// point...) need the key as shown.
    fn matches(&self, reference: KeyRef, key: &Key) -> bool {
        let (name, want) = match self {
            Filter::Reference(r) => return reference == *r,
            Filter::Attribute(name, want) => (*name, want),
        };
        let class = key.material.class();
        // Label, class and type read off the key as it is stored; flags off
        // its attributes; every other attribute as the key shows it.
        if name == AttrName::Label {
            return key.attrs.label.eq_ignore_ascii_case(want);
        }
        if name == AttrName::Class {
            return class_name(class).eq_ignore_ascii_case(want);
        }
        if name == AttrName::KeyType {
            return kind_name(key.material.kind()).eq_ignore_ascii_case(want);
        }
        match flag(&key.attrs, class, name) {
            Some(v) => want.eq_ignore_ascii_case(if v { "true" } else { "false" }),
            None => view(reference, key).attribute(name).is_some_and(|have| have.eq_ignore_ascii_case(want)),
        }
    }
}
