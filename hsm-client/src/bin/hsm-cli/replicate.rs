//! `key replicate`: copies a token key from one cluster to another that is
//! a clone of it (created from its backup, so holding the same masking
//! key), as CloudHSM does: the key leaves the source as a masked object
//! that only HSMs with that masking key open, and keeps its reference,
//! attributes, owner and shared users on the destination.
//!
//! The destination's HSMs refuse an object masked by another lineage, and
//! an owner or shared user they do not have, so a destination that is not a
//! clone gets nothing. A destination key with the same reference that is a
//! different key (clones hand out references independently after the split)
//! is refused before anything is sent.

use hsm_client::{ClusterKey, ClusterSession, KeyInfo, ListKeys};
use serde_json::Value;

use crate::{grammar::common::Pair, input, output};

/// The source and destination as the user named them, for messages.
pub(crate) struct Ids<'a> {
    pub(crate) source: &'a str,
    pub(crate) destination: &'a str,
}

/// Replicates the one key `filter` selects on `source` to `destination`.
pub(crate) async fn run(
    source: &ClusterSession,
    destination: &ClusterSession,
    filter: &[Pair],
    ids: Ids<'_>,
) -> Result<Value, String> {
    let Ids { source: from, destination: to } = ids;
    let key = input::resolve(source, "--filter", filter).await?;
    if key.session {
        return Err(format!(
            "key {} is a session key: only token keys are replicated (it ends with its session)",
            key.reference
        ));
    }
    if let Some(held) = find(destination, &key.reference).await?
        && !same_key(&held.info, &key)
    {
        return Err(format!(
            "destination cluster {to} already holds a different key with reference {} ({} {}); nothing was \
             written",
            key.reference,
            held.info.attribute("key-type").unwrap_or("?"),
            held.info.attribute("class").unwrap_or("?"),
        ));
    }
    let object = source
        .extract_masked_key(&key.reference)
        .await
        .map_err(|e| format!("source cluster {from}: {}", output::error(e)))?;
    destination.insert_masked_key(&object).await.map_err(|e| {
        let why = output::error(e);
        let not_clone = ["move only within their cluster", "does not open under this cluster's masking key"]
            .iter()
            .any(|m| why.contains(m));
        if not_clone {
            format!(
                "destination cluster {to} is not a clone of source cluster {from} (it was not created from a \
                 backup of it, and does not share its masking key): {why}; nothing was written"
            )
        } else {
            format!("destination cluster {to} refused key {}: {why}; nothing was written", key.reference)
        }
    })?;
    let copy = find(destination, &key.reference).await?.ok_or_else(|| {
        format!("destination cluster {to} took key {} but does not list it to this user", key.reference)
    })?;
    let mut data = output::key(&copy);
    if let Value::Object(map) = &mut data {
        map.insert("message".into(), Value::String("Successfully replicated key".into()));
    }
    Ok(data)
}

/// The key with this reference that `session` sees, if any.
async fn find(session: &ClusterSession, reference: &str) -> Result<Option<ClusterKey>, String> {
    let filter = [("key-reference".to_owned(), reference.to_owned())];
    let page = session.list_keys(ListKeys::default().filters(&filter)).await.map_err(output::error)?;
    Ok(page.keys.into_iter().find(|k| k.info.reference == reference))
}

/// Whether two keys with the same reference are the same key (an earlier
/// replica, perhaps older): same type, class and check value.
fn same_key(a: &KeyInfo, b: &KeyInfo) -> bool {
    ["key-type", "class", "check-value"].iter().all(|name| a.attribute(name) == b.attribute(name))
}
