//! The object rules of keys: who owns a key, who sees it, who may use,
//! wrap, export, delete, share or modify it. Who may do what by role is the
//! permission table's ([`Action`]); these rules ask it through [`Actor`].

use std::{collections::BTreeSet, sync::Arc};

use super::{
    AttrName, Attributes, Key, KeyQuorum, KeyRef, KeyView, Keys, MAX_SHARED_USERS, NewKey, Usage,
    attributes::set_field, replicas::Tombstone, view,
};
use crate::{
    crypto::{KeyClass, KeyMaterial},
    model::{Action, Identity, ModelError, SessionId, Username},
};

/// Who asks: the caller's name, and its identity, for the questions the
/// permission table answers ([`Action`]).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a Username,
    pub identity: Identity,
}

impl Actor<'_> {
    pub(super) fn may(self, action: Action) -> bool {
        action.allowed().admits(self.identity, Some(self.user))
    }
}

impl Keys {
    /// Stores keys made together (one key, or a public/private pair) for
    /// `owner`, all or none.
    pub fn insert(
        &mut self,
        owner: &Username,
        session: Option<SessionId>,
        new: Vec<NewKey>,
    ) -> Result<Vec<KeyView>, ModelError> {
        let mut prepared = Vec::with_capacity(new.len());
        for key in new {
            let class = key.material.class();
            let mut attrs = Attributes::defaults(class, session.is_none(), key.local);
            key.template.apply(&mut attrs)?;
            attrs.always_sensitive = class != KeyClass::Public && attrs.sensitive;
            attrs.never_extractable = class != KeyClass::Public && !attrs.extractable;
            prepared.push(Key {
                material: key.material,
                attrs,
                owner: owner.clone(),
                shared: BTreeSet::new(),
                session,
                version: 1,
                digest: [0; 32],
                quorum: KeyQuorum::default(),
            });
        }
        let adding_asym = prepared.iter().filter(|k| k.material.class() != KeyClass::Secret).count();
        self.check_quota(prepared.len(), adding_asym)?;
        let mut views = Vec::with_capacity(prepared.len());
        for mut key in prepared {
            let reference = KeyRef(self.next_ref);
            key.digest = key.compute_digest(reference);
            self.next_ref += 1;
            views.push(view(reference, &key));
            self.dirty.insert(reference);
            self.put(reference, key);
        }
        Ok(views)
    }

    /// The material of a key `actor` may use for `usage`: its own, one shared
    /// with it, or any public key; with the attribute that allows the usage.
    pub fn for_use(&self, actor: Actor<'_>, reference: KeyRef, usage: Usage) -> Result<Arc<KeyMaterial>, ModelError> {
        let key = self.visible(actor, reference)?;
        if !actor.may(Action::UseKeys) {
            return Err(key_denied(reference, "admins cannot use keys"));
        }
        if !usage.allowed_by(&key.attrs) {
            return Err(ModelError::KeyAttribute { reference, attribute: usage.attribute() });
        }
        Ok(Arc::clone(&key.material))
    }

    /// The wrapping key and the key to wrap. Wrapping exports the target, so
    /// only its owner may, and only if it is extractable; a target marked
    /// `wrap-with-trusted` needs a trusted wrapping key.
    pub fn for_wrap(
        &self,
        actor: Actor<'_>,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        let wrapping_material = self.for_use(actor, wrapping, Usage::Wrap)?;
        let key = self.visible(actor, target)?;
        if &key.owner != actor.user {
            return Err(key_denied(target, "only the key's owner can wrap (export) it"));
        }
        if !key.attrs.extractable {
            return Err(ModelError::KeyAttribute { reference: target, attribute: AttrName::Extractable });
        }
        if key.attrs.wrap_with_trusted && !self.keys.get(&wrapping).is_some_and(|k| k.attrs.trusted) {
            return Err(key_denied(target, "it is marked wrap-with-trusted and the wrapping key is not trusted"));
        }
        Ok((wrapping_material, Arc::clone(&key.material)))
    }

    /// The public material behind a public or private key, for export as PEM.
    pub fn for_public_export(&self, actor: Actor<'_>, reference: KeyRef) -> Result<Arc<KeyMaterial>, ModelError> {
        let key = self.visible(actor, reference)?;
        if !actor.may(Action::UseKeys) {
            return Err(key_denied(reference, "admins cannot export keys"));
        }
        if key.material.class() == KeyClass::Secret {
            return Err(ModelError::InvalidArgument {
                field: "key_reference",
                rule: format!("{reference} is a secret key; only public keys can be exported as PEM"),
            });
        }
        Ok(Arc::clone(&key.material))
    }

    pub fn delete(&mut self, actor: Actor<'_>, reference: KeyRef) -> Result<KeyView, ModelError> {
        let key = self.owned(actor, reference, "delete")?;
        if !key.attrs.destroyable {
            return Err(ModelError::KeyAttribute { reference, attribute: AttrName::Destroyable });
        }
        let shown = view(reference, key);
        if key.session.is_none() {
            let tombstone = Tombstone { version: key.version + 1, owner: key.owner.clone() };
            self.tombstones.insert(reference, tombstone);
            self.dirty_tombstones.insert(reference);
        }
        self.take(reference);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// Shares a key with another crypto user (`is_crypto_user` says whether
    /// the named user exists with that role).
    pub fn share(
        &mut self,
        actor: Actor<'_>,
        reference: KeyRef,
        with: Username,
        is_crypto_user: bool,
    ) -> Result<KeyView, ModelError> {
        let key = self.owned_mut(actor, reference, "share")?;
        if key.material.class() == KeyClass::Public {
            return Err(ModelError::InvalidArgument {
                field: "key_reference",
                rule: format!("{reference} is a public key, which every crypto user can already use"),
            });
        }
        if !is_crypto_user {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("'{with}' is not a crypto user; keys are shared only with crypto users"),
            });
        }
        if with == key.owner {
            return Err(ModelError::InvalidArgument { field: "username", rule: format!("'{with}' owns {reference}") });
        }
        if key.shared.contains(&with) {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("{reference} is already shared with '{with}'"),
            });
        }
        if key.shared.len() >= MAX_SHARED_USERS {
            return Err(ModelError::KeyQuota { what: "users a key is shared with", max: MAX_SHARED_USERS });
        }
        key.shared.insert(with);
        key.changed(reference);
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    pub fn unshare(&mut self, actor: Actor<'_>, reference: KeyRef, with: &Username) -> Result<KeyView, ModelError> {
        let key = self.owned_mut(actor, reference, "unshare")?;
        let needed = key.quorum.manage.max(key.quorum.usage);
        if key.shared.contains(with) && usize::from(needed) > key.shared.len() {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!(
                    "{reference} has a quorum value of {needed}; unsharing would leave fewer users to approve"
                ),
            });
        }
        if !key.shared.remove(with) {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("{reference} is not shared with '{with}'"),
            });
        }
        key.changed(reference);
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// Sets one attribute. `trusted` is set on any key the caller sees,
    /// whether or not it is `modifiable`; the others on one's own keys while
    /// they are `modifiable`. Who may set which: [`Action::SetTrustedAttribute`]
    /// and [`Action::SetKeyAttribute`].
    pub fn set_attribute(
        &mut self,
        actor: Actor<'_>,
        reference: KeyRef,
        name: AttrName,
        value: &str,
    ) -> Result<KeyView, ModelError> {
        let trusted = name == AttrName::Trusted;
        if trusted && !actor.may(Action::SetTrustedAttribute) {
            return Err(key_denied(reference, "only admins may set the trusted attribute"));
        }
        if !trusted && !actor.may(Action::SetKeyAttribute) {
            return Err(key_denied(reference, "admins may set only the trusted attribute"));
        }
        let key = if trusted {
            self.visible(actor, reference)?;
            self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })?
        } else {
            self.owned_mut(actor, reference, "modify")?
        };
        if !trusted && !key.attrs.modifiable {
            return Err(ModelError::KeyAttribute { reference, attribute: AttrName::Modifiable });
        }
        let mut next = key.attrs.clone();
        set_field(&mut next, name, value)?;
        let one_way = |was: bool, now: bool, rule: &str| -> Result<(), ModelError> {
            if was != now {
                return Err(ModelError::InvalidArgument { field: "value", rule: format!("{name} {rule}") });
            }
            Ok(())
        };
        // The attributes with a rule of their own; the others change freely
        // (set_field has refused the read-only ones).
        if name == AttrName::Modifiable && next.modifiable {
            one_way(key.attrs.modifiable, true, "can go from true to false only")?;
        }
        if name == AttrName::WrapWithTrusted && key.attrs.wrap_with_trusted {
            one_way(true, next.wrap_with_trusted, "is read-only once true")?;
        }
        if name == AttrName::Sensitive && key.attrs.sensitive {
            one_way(true, next.sensitive, "can go from false to true only")?;
        }
        if [AttrName::Extractable, AttrName::Id, AttrName::Token, AttrName::Private].contains(&name) {
            return Err(ModelError::InvalidArgument {
                field: "name",
                rule: format!("{name} is fixed when the key is created"),
            });
        }
        if name == AttrName::Sensitive && !next.sensitive {
            next.always_sensitive = false;
        }
        if name == AttrName::Label {
            // Out and back in, so that the label index follows.
            if let Some(mut key) = self.take(reference) {
                key.attrs = next;
                key.changed(reference);
                self.put(reference, key);
            }
        } else {
            key.attrs = next;
            key.changed(reference);
        }
        let key = self.keys.get(&reference).ok_or(ModelError::KeyNotFound { reference })?;
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// How many keys `user` owns.
    pub fn owned_by(&self, user: &Username) -> usize {
        self.keys.values().filter(|k| &k.owner == user).count()
    }

    /// Forgets a deleted user in every share list.
    pub fn forget_user(&mut self, user: &Username) {
        for (reference, key) in &mut self.keys {
            if key.shared.remove(user) {
                key.changed(*reference);
                self.dirty.insert(*reference);
            }
        }
    }

    pub(super) fn visible(&self, actor: Actor<'_>, reference: KeyRef) -> Result<&Key, ModelError> {
        match self.keys.get(&reference) {
            Some(key) if actor.may(Action::SeeEveryKey) || sees(actor.user, key) => Ok(key),
            _ => Err(ModelError::KeyNotFound { reference }),
        }
    }

    fn owned(&self, actor: Actor<'_>, reference: KeyRef, what: &str) -> Result<&Key, ModelError> {
        let key = self.visible(actor, reference)?;
        if &key.owner != actor.user {
            return Err(key_denied(reference, &format!("only the key's owner can {what} it")));
        }
        Ok(key)
    }

    fn owned_mut(&mut self, actor: Actor<'_>, reference: KeyRef, what: &str) -> Result<&mut Key, ModelError> {
        self.owned(actor, reference, what)?;
        self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })
    }
}

/// Whether a crypto user can see a key.
pub(super) fn sees(user: &Username, key: &Key) -> bool {
    &key.owner == user || key.shared.contains(user) || key.material.class() == KeyClass::Public
}

pub(super) fn key_denied(reference: KeyRef, rule: &str) -> ModelError {
    ModelError::KeyPermission { reference, rule: rule.to_owned() }
}
