//! What is sealed under the cluster's key: masked objects
//! ([`masked_object()`]) and backups ([`backup()`]).

use super::{expect, fixtures};
use crate::{
    model::Hsm,
    service::rig,
    store::{self, Backing, Masker, Opened, Store},
};

/// Opens a masked object of the rigs' cluster. The first byte's low bit
/// picks what the rest is: a whole masked object, or an encoded payload
/// that is first sealed as one (so that the fuzzer reaches the decoding
/// behind the seal).
///
/// Properties: an object that opens masks again, and the new one opens as
/// the same object.
pub fn masked_object(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let masker = Masker::new(&rig::cluster_key(), &rig::cluster().id);
    let bytes = if form & 1 == 0 { rest.to_vec() } else { expect(masker.seal(rest), "sealing a payload") };
    let Ok(object) = masker.unmask(&bytes) else { return false };
    let again = expect(masker.mask(&object), "masking an object that opened");
    let reopened = expect(masker.unmask(&again), "opening an object masked again");
    assert_eq!(format!("{object:?}"), format!("{reopened:?}"), "masking again changed the object");
    true
}

/// Restores a backup of the rigs' cluster. The first byte picks what the
/// rest is: 0 a whole backup file, 1 to 3 a payload of that format that is
/// first sealed as a backup (reaching the decoding behind the seal).
///
/// Properties: a backup that decodes restores into a new store, which
/// holds its users and keys, and into a model.
pub fn backup(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let cluster = rig::cluster();
    let key = rig::cluster_key();
    let bytes = match form % 4 {
        0 => rest.to_vec(),
        version => expect(
            store::seal_backup(u32::from(version), rest, &key, cluster.id.as_str(), "hsm-fuzz"),
            "sealing a payload",
        ),
    };
    let Ok(state) = store::decode_backup(&bytes, &key, &cluster) else { return false };
    let (users, keys) = (state.users.len(), state.keys.len());
    let hsm = fixtures().setup.hsm.clone();
    let opened = expect(Store::open(&Backing::Memory, &key, cluster.id.as_str(), hsm.id.as_str()), "a new store");
    let Opened::New(new) = opened else { panic!("a store in memory was not new") };
    expect(new.initialize(&cluster, &hsm, &store::changes_of(state)), "writing a decoded backup");
    let loaded = expect(new.load(), "reading a restored store");
    assert_eq!((loaded.users.len(), loaded.keys.len()), (users, keys), "the store lost what the backup held");
    let _ = Hsm::restore(fixtures().setup.clone(), loaded);
    true
}
