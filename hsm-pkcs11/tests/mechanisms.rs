//! Every mechanism `C_GetMechanismList` lists works: the test runs each one
//! through the library against an HSM, checks results with ring (or, where
//! ring lacks the algorithm, with sha2 or through the library's own verify
//! and a tampered input), and finally checks that the mechanisms it ran are
//! exactly the ones listed. A FIPS cluster (the default) lists no triple
//! DES and refuses it as `CKR_MECHANISM_INVALID`; a non-FIPS cluster then
//! lists the four triple DES mechanisms as well, and they run too.
//!
//! The library reads its configuration from the process environment: one
//! test function.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::collections::BTreeSet;

use common::{Rig, library_path};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::{
        Mechanism, MechanismType,
        aead::GcmParams,
        eddsa::{EddsaParams, EddsaSignatureScheme},
        rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams},
        vendor_defined::VendorDefinedMechanism,
    },
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    types::AuthPin,
};
use cryptoki_sys::{CK_AES_CTR_PARAMS, CK_MECHANISM_TYPE, CKM_RSA_AES_KEY_WRAP, CKM_SHA224_RSA_PKCS_PSS};
use hsm_daemon::{model::ClusterMode, testing::Options};
use ring::{digest, hmac, signature};
use sha2::Digest as _;

const P224: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21];
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const K256: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
const SHA256_DIGEST_INFO: &[u8] =
    &[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];
const DATA: &[u8] = b"every mechanism the library lists";

/// The mechanisms run so far.
#[derive(Default)]
struct Ran(BTreeSet<CK_MECHANISM_TYPE>);

impl Ran {
    fn mark<'m, 'a>(&mut self, m: &'m Mechanism<'a>) -> &'m Mechanism<'a> {
        self.0.insert(*m.mechanism_type());
        m
    }
}

fn bytes(session: &Session, object: ObjectHandle, kind: AttributeType) -> Vec<u8> {
    match session.get_attributes(object, &[kind]).unwrap().pop().unwrap() {
        Attribute::EcPoint(v) | Attribute::Modulus(v) | Attribute::PublicExponent(v) => v,
        other => panic!("not bytes: {other:?}"),
    }
}

/// Signs `DATA`, verifies through the library, and checks a tampered
/// message is refused; returns the signature.
fn sign_verify(session: &Session, m: &Mechanism, private: ObjectHandle, public: ObjectHandle) -> Vec<u8> {
    let signature = session.sign(m, private, DATA).unwrap();
    session.verify(m, public, DATA, &signature).unwrap();
    assert!(session.verify(m, public, b"tampered", &signature).is_err(), "{m:?}");
    signature
}

/// A key pair that signs and verifies (`rsa`: and encrypts and wraps).
fn pair(session: &Session, generate: &Mechanism, params: &[Attribute], rsa: bool) -> (ObjectHandle, ObjectHandle) {
    let mut public = params.to_vec();
    let mut private = vec![Attribute::Sign(true)];
    public.push(Attribute::Verify(true));
    if rsa {
        public.extend([Attribute::Encrypt(true), Attribute::Wrap(true)]);
        private.extend([Attribute::Decrypt(true), Attribute::Unwrap(true)]);
    }
    session.generate_key_pair(generate, &public, &private).unwrap()
}

/// The mechanism list as the C function gives it (the `cryptoki` crate
/// drops the types it has no name for), from the library's own code
/// linked into this test.
#[expect(unsafe_code, reason = "calling the library's C functions, as C code does")]
fn listed() -> BTreeSet<CK_MECHANISM_TYPE> {
    use hsm_pkcs11::ffi::{C_Finalize, C_GetMechanismList, C_Initialize};
    let mut list = [0; 64];
    let mut count = list.len() as cryptoki_sys::CK_ULONG;
    // SAFETY: null initialise arguments and reserved pointer, as PKCS#11
    // allows; the list and count are this function's, `count` long.
    unsafe {
        assert_eq!(C_Initialize(std::ptr::null_mut()), cryptoki_sys::CKR_OK);
        assert_eq!(C_GetMechanismList(1, list.as_mut_ptr(), &mut count), cryptoki_sys::CKR_OK);
        assert_eq!(C_Finalize(std::ptr::null_mut()), cryptoki_sys::CKR_OK);
    }
    list[..usize::try_from(count).unwrap()].iter().copied().collect()
}

/// A raw `r || s` ECDSA signature as the DER SEQUENCE ring's ASN.1
/// verifiers take.
fn asn1(signature: &[u8]) -> Vec<u8> {
    let integer = |half: &[u8]| {
        let digits = &half[half.iter().position(|b| *b != 0).unwrap_or(half.len() - 1)..];
        let pad = usize::from(digits[0] & 0x80 != 0);
        let mut out = vec![0x02, u8::try_from(digits.len() + pad).unwrap()];
        out.extend(std::iter::repeat_n(0, pad));
        out.extend(digits);
        out
    };
    let (r, s) = signature.split_at(signature.len() / 2);
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, u8::try_from(body.len()).unwrap()], body].concat()
}

/// HMAC-SHA-224 (RFC 2104), which ring lacks.
fn hmac_sha224(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = sha2::Sha224::new().chain_update(pad(0x36)).chain_update(data).finalize();
    sha2::Sha224::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

#[test]
fn every_listed_mechanism_works() {
    let rig = Rig::with_users(1, &[], Options::default());
    rig.point_the_library_here();
    let pkcs11 = Pkcs11::new(library_path()).unwrap();
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let listed = listed();
    assert_eq!(
        listed.len(),
        pkcs11.get_mechanism_list(slot).unwrap().len() + 5,
        "cryptoki drops the five it cannot name"
    );
    let s = pkcs11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("alice:alice-pass".into()))).unwrap();
    let mut ran = Ran::default();

    // Secret keys.
    let usable = [Attribute::Encrypt(true), Attribute::Decrypt(true), Attribute::Wrap(true), Attribute::Unwrap(true)];
    let aes =
        s.generate_key(ran.mark(&Mechanism::AesKeyGen), &[&usable[..], &[Attribute::ValueLen(32.into())]].concat());
    let aes = aes.unwrap();
    let to_wrap = [Attribute::ValueLen(16.into()), Attribute::Extractable(true), Attribute::Encrypt(true)];
    let small = s.generate_key(&Mechanism::AesKeyGen, &to_wrap).unwrap();
    let macs = [Attribute::ValueLen(32.into()), Attribute::Sign(true), Attribute::Verify(true)];
    let generated_mac = s.generate_key(ran.mark(&Mechanism::GenericSecretKeyGen), &macs).unwrap();
    s.sign(&Mechanism::Sha256Hmac, generated_mac, DATA).unwrap();

    // EC on every curve; ECDSA with every hash, on P-256.
    for curve in [P224, P256, P384, P521, K256] {
        let (public, private) =
            pair(&s, ran.mark(&Mechanism::EccKeyPairGen), &[Attribute::EcParams(curve.to_vec())], false);
        sign_verify(&s, &Mechanism::EcdsaSha256, private, public);
    }
    let (ec_public, ec_private) = pair(&s, &Mechanism::EccKeyPairGen, &[Attribute::EcParams(P256.to_vec())], false);
    let point = bytes(&s, ec_public, AttributeType::EcPoint)[2..].to_vec();
    let ring_ec = |alg, signature: &[u8]| {
        signature::UnparsedPublicKey::new(alg, &point).verify(DATA, signature).unwrap();
    };
    ring_ec(
        &signature::ECDSA_P256_SHA256_FIXED,
        &sign_verify(&s, ran.mark(&Mechanism::EcdsaSha256), ec_private, ec_public),
    );
    ring_ec(
        &signature::ECDSA_P256_SHA384_ASN1,
        &asn1(&sign_verify(&s, ran.mark(&Mechanism::EcdsaSha384), ec_private, ec_public)),
    );
    for m in [Mechanism::EcdsaSha1, Mechanism::EcdsaSha224, Mechanism::EcdsaSha512] {
        sign_verify(&s, ran.mark(&m), ec_private, ec_public);
    }
    let prehashed = digest::digest(&digest::SHA256, DATA);
    let raw = s.sign(ran.mark(&Mechanism::Ecdsa), ec_private, prehashed.as_ref()).unwrap();
    ring_ec(&signature::ECDSA_P256_SHA256_FIXED, &raw);

    // Ed25519.
    let (ed_public, ed_private) = pair(&s, ran.mark(&Mechanism::EccEdwardsKeyPairGen), &[], false);
    let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519));
    let signature = sign_verify(&s, ran.mark(&eddsa), ed_private, ed_public);
    let ed_point = bytes(&s, ed_public, AttributeType::EcPoint)[2..].to_vec();
    signature::UnparsedPublicKey::new(&signature::ED25519, &ed_point).verify(DATA, &signature).unwrap();

    // RSA-2048: PKCS#1 v1.5 and PSS with every hash, raw and hashing.
    let rsa_generate = Mechanism::RsaPkcsKeyPairGen;
    let rsa_params = [Attribute::ModulusBits(2048.into()), Attribute::PublicExponent(vec![1, 0, 1])];
    let (rsa_public, rsa_private) = pair(&s, ran.mark(&rsa_generate), &rsa_params, true);
    let n = bytes(&s, rsa_public, AttributeType::Modulus);
    let e = bytes(&s, rsa_public, AttributeType::PublicExponent);
    let ring_rsa = |alg, signature: &[u8]| {
        signature::RsaPublicKeyComponents { n: &n, e: &e }.verify(alg, DATA, signature).unwrap();
    };
    let digest_info = [SHA256_DIGEST_INFO, prehashed.as_ref()].concat();
    ring_rsa(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &s.sign(ran.mark(&Mechanism::RsaPkcs), rsa_private, &digest_info).unwrap(),
    );
    // Raw CKM_RSA_PKCS signs any data, and verifies it.
    sign_verify(&s, &Mechanism::RsaPkcs, rsa_private, rsa_public);
    // Raw RSA: the PKCS#1 v1.5 block built here is what ring checks.
    let block = [&[0, 1][..], &[0xff; 256 - 3 - 51], &[0], &digest_info].concat();
    ring_rsa(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        &s.sign(ran.mark(&Mechanism::RsaX509), rsa_private, &block).unwrap(),
    );
    sign_verify(&s, &Mechanism::RsaX509, rsa_private, rsa_public);
    let pkcs1 = [
        (Mechanism::Sha1RsaPkcs, Some(&signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY)),
        (Mechanism::Sha224RsaPkcs, None),
        (Mechanism::Sha256RsaPkcs, Some(&signature::RSA_PKCS1_2048_8192_SHA256)),
        (Mechanism::Sha384RsaPkcs, Some(&signature::RSA_PKCS1_2048_8192_SHA384)),
        (Mechanism::Sha512RsaPkcs, Some(&signature::RSA_PKCS1_2048_8192_SHA512)),
    ];
    for (m, alg) in &pkcs1 {
        let signature = sign_verify(&s, ran.mark(m), rsa_private, rsa_public);
        if let Some(alg) = alg {
            ring_rsa(*alg, &signature);
        }
    }
    let pss = |hash_alg, mgf, s_len: u64| PkcsPssParams { hash_alg, mgf, s_len: s_len.into() };
    let pss256 = pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32);
    let raw_pss = s.sign(ran.mark(&Mechanism::RsaPkcsPss(pss256)), rsa_private, prehashed.as_ref()).unwrap();
    ring_rsa(&signature::RSA_PSS_2048_8192_SHA256, &raw_pss);
    // cryptoki cannot name CKM_SHA224_RSA_PKCS_PSS or CKM_RSA_AES_KEY_WRAP:
    // tests/ffi.rs runs them.
    ran.0.extend([CKM_SHA224_RSA_PKCS_PSS, CKM_RSA_AES_KEY_WRAP]);
    let with_pss = [
        (Mechanism::Sha1RsaPkcsPss(pss(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, 20)), None),
        (Mechanism::Sha256RsaPkcsPss(pss256), Some(&signature::RSA_PSS_2048_8192_SHA256)),
        (
            Mechanism::Sha384RsaPkcsPss(pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48)),
            Some(&signature::RSA_PSS_2048_8192_SHA384),
        ),
        (
            Mechanism::Sha512RsaPkcsPss(pss(MechanismType::SHA512, PkcsMgfType::MGF1_SHA512, 64)),
            Some(&signature::RSA_PSS_2048_8192_SHA512),
        ),
    ];
    for (m, alg) in &with_pss {
        let signature = sign_verify(&s, ran.mark(m), rsa_private, rsa_public);
        if let Some(alg) = alg {
            ring_rsa(*alg, &signature);
        }
    }

    // HMAC with every hash, on a key of known value.
    let mac_key = [0x42u8; 32];
    let mac = s
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(mac_key.to_vec()),
            Attribute::Sign(true),
            Attribute::Verify(true),
        ])
        .unwrap();
    let ring_hmac = |alg| hmac::sign(&hmac::Key::new(alg, &mac_key), DATA).as_ref().to_vec();
    let hmacs = [
        (Mechanism::Sha1Hmac, ring_hmac(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY)),
        (Mechanism::Sha224Hmac, hmac_sha224(&mac_key, DATA)),
        (Mechanism::Sha256Hmac, ring_hmac(hmac::HMAC_SHA256)),
        (Mechanism::Sha384Hmac, ring_hmac(hmac::HMAC_SHA384)),
        (Mechanism::Sha512Hmac, ring_hmac(hmac::HMAC_SHA512)),
    ];
    for (m, want) in &hmacs {
        assert_eq!(&sign_verify(&s, ran.mark(m), mac, mac), want, "{m:?}");
    }

    // Digests.
    let digests = [
        (Mechanism::Sha1, digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, DATA).as_ref().to_vec()),
        (Mechanism::Sha224, sha2::Sha224::digest(DATA).to_vec()),
        (Mechanism::Sha256, digest::digest(&digest::SHA256, DATA).as_ref().to_vec()),
        (Mechanism::Sha384, digest::digest(&digest::SHA384, DATA).as_ref().to_vec()),
        (Mechanism::Sha512, digest::digest(&digest::SHA512, DATA).as_ref().to_vec()),
    ];
    for (m, want) in &digests {
        assert_eq!(&s.digest(ran.mark(m), DATA).unwrap(), want, "{m:?}");
    }

    // Encryption round trips.
    let blocks = &DATA[..32];
    let ctr = CK_AES_CTR_PARAMS { ulCounterBits: 128, cb: [5; 16] };
    let mut gcm_iv = [0u8; 12];
    let round_trips = [
        (Mechanism::AesEcb, aes, blocks, 32),
        (Mechanism::AesCbcPad([1; 16]), aes, DATA, 48),
        (
            Mechanism::VendorDefined(VendorDefinedMechanism::new(MechanismType::AES_CTR, Some(&ctr))),
            aes,
            DATA,
            DATA.len(),
        ),
        (Mechanism::RsaPkcs, rsa_public, DATA, 256),
        (Mechanism::AesCbc([1; 16]), aes, blocks, 32),
        // Raw RSA decrypts to the modulus length: leading zeros kept.
        (Mechanism::RsaX509, rsa_public, &[&[0; 256 - DATA.len()][..], DATA].concat(), 256),
    ];
    for (m, key, plain, len) in &round_trips {
        let decrypt_key = if *key == rsa_public { rsa_private } else { *key };
        let sealed = s.encrypt(ran.mark(m), *key, plain).unwrap();
        assert_eq!(sealed.len(), *len, "{m:?}");
        assert_eq!(&s.decrypt(m, decrypt_key, &sealed).unwrap(), plain, "{m:?}");
    }
    let sealed =
        s.encrypt(&Mechanism::AesGcm(GcmParams::new(&mut gcm_iv, b"", 128.into()).unwrap()), aes, DATA).unwrap();
    let gcm = Mechanism::AesGcm(GcmParams::new(&mut gcm_iv, b"", 128.into()).unwrap());
    assert_eq!(s.decrypt(ran.mark(&gcm), aes, &sealed).unwrap(), DATA);
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let sealed = s.encrypt(ran.mark(&oaep), rsa_public, DATA).unwrap();
    assert_eq!(s.decrypt(&oaep, rsa_private, &sealed).unwrap(), DATA);

    // Wrapping: each mechanism wraps the small AES key and unwraps it as a
    // new key, which encrypts as the original does.
    let reference = s.encrypt(&Mechanism::AesEcb, small, &blocks[..16]).unwrap();
    let mut wrap_iv = [0u8; 12];
    let gcm_wrap = Mechanism::AesGcm(GcmParams::new(&mut wrap_iv, b"", 128.into()).unwrap());
    let wraps = [
        (Mechanism::AesKeyWrap, aes, aes),
        (Mechanism::AesKeyWrapPad, aes, aes),
        (gcm_wrap, aes, aes),
        (oaep, rsa_public, rsa_private),
    ];
    for (m, wrapping, unwrapping) in &wraps {
        let wrapped = s.wrap_key(ran.mark(m), *wrapping, small).unwrap();
        let template =
            [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::KeyType(KeyType::AES), Attribute::Encrypt(true)];
        let unwrapped = s.unwrap_key(m, *unwrapping, &wrapped, &template).unwrap();
        assert_eq!(s.encrypt(&Mechanism::AesEcb, unwrapped, &blocks[..16]).unwrap(), reference, "{m:?}");
    }

    assert_eq!(ran.0, listed, "the mechanisms run are exactly the ones listed");

    // A FIPS cluster has no triple DES: not listed, and refused as unknown.
    let invalid = |r: Result<_, Error>| assert!(matches!(r, Err(Error::Pkcs11(RvError::MechanismInvalid, _))));
    invalid(s.generate_key(&Mechanism::Des3KeyGen, &usable).map(|_| ()));
    invalid(s.encrypt(&Mechanism::Des3Ecb, aes, blocks).map(|_| ()));
    invalid(s.decrypt(&Mechanism::Des3CbcPad([1; 8]), aes, blocks).map(|_| ()));
    invalid(pkcs11.get_mechanism_info(slot, MechanismType::DES3_CBC).map(|_| ()));
    let des3_key = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::KeyType(KeyType::DES3)];
    let imported = s.create_object(&[&des3_key[..], &[Attribute::Value(SP800_67_KEY.to_vec())]].concat());
    assert!(matches!(imported, Err(Error::Pkcs11(RvError::AttributeValueInvalid, _))), "{imported:?}");
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, aes, small).unwrap();
    let unwrapped = s.unwrap_key(&Mechanism::AesKeyWrap, aes, &wrapped, &des3_key);
    assert!(matches!(unwrapped, Err(Error::Pkcs11(RvError::AttributeValueInvalid, _))), "{unwrapped:?}");
    drop(s);
    pkcs11.clone().finalize().unwrap();
    drop(rig);

    des3_on_a_non_fips_cluster(pkcs11, &listed);
}

/// NIST SP 800-67 Rev. 1's triple DES example: K1 || K2 || K3, the message
/// "The qufck brown fox jump" and its ECB ciphertext (which OpenSSL gives
/// too: `openssl enc -des-ede3 -K <key> -nopad`).
const SP800_67_KEY: [u8; 24] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x45, 0x67, 0x89,
    0xab, 0xcd, 0xef, 0x01, 0x23,
];
const SP800_67_PLAINTEXT: &[u8] = b"The qufck brown fox jump";
const SP800_67_ECB: [u8; 24] = [
    0xa8, 0x26, 0xfd, 0x8c, 0xe5, 0x3b, 0x85, 0x5f, 0xcc, 0xe2, 0x1c, 0x81, 0x12, 0x25, 0x6f, 0xe6, 0x68, 0xd5, 0xc0,
    0x5d, 0xd9, 0xb6, 0xb9, 0x00,
];
/// `printf 'The qufck brown fox jump' | openssl enc -des-ede3-cbc -K <key>
/// -iv f69f2445df4f9b17 | xxd -p` (PKCS#7 padding; with `-nopad`, the first
/// 24 bytes).
const DES3_IV: [u8; 8] = [0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f, 0x9b, 0x17];
const OPENSSL_CBC_PAD: [u8; 32] = [
    0xa5, 0xc2, 0x82, 0xba, 0xd0, 0xde, 0x37, 0x74, 0xbe, 0xcd, 0x2e, 0x04, 0x38, 0x6b, 0x58, 0x9f, 0xb5, 0x05, 0x7d,
    0x85, 0x52, 0xfc, 0x43, 0x36, 0xaf, 0x45, 0x14, 0x8b, 0x1b, 0x04, 0x4b, 0x00,
];

/// The same library, initialised again against a non-FIPS cluster: the
/// list is the FIPS one plus the four triple DES mechanisms, and each of
/// them runs (generation, one-part and multi-part encryption, and the
/// known answers with an imported key).
fn des3_on_a_non_fips_cluster(pkcs11: Pkcs11, fips_listed: &BTreeSet<CK_MECHANISM_TYPE>) {
    let rig = Rig::with_users(1, &[], Options { mode: ClusterMode::NonFips, ..Options::default() });
    rig.point_the_library_here();
    let listed = listed();
    let des3: BTreeSet<CK_MECHANISM_TYPE> = [
        cryptoki_sys::CKM_DES3_KEY_GEN,
        cryptoki_sys::CKM_DES3_ECB,
        cryptoki_sys::CKM_DES3_CBC,
        cryptoki_sys::CKM_DES3_CBC_PAD,
    ]
    .into();
    assert_eq!(listed, fips_listed.union(&des3).copied().collect(), "non-FIPS adds triple DES");
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    let slot = pkcs11.get_slots_with_token().unwrap()[0];
    let info = pkcs11.get_mechanism_info(slot, MechanismType::DES3_KEY_GEN).unwrap();
    assert_eq!((info.min_key_size(), info.max_key_size()), (24, 24));
    let s = pkcs11.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new("alice:alice-pass".into()))).unwrap();
    let mut ran = Ran::default();

    let usable = [Attribute::Encrypt(true), Attribute::Decrypt(true)];
    let generated = s.generate_key(ran.mark(&Mechanism::Des3KeyGen), &usable).unwrap();
    let attributes = s.get_attributes(generated, &[AttributeType::KeyType, AttributeType::ValueLen]).unwrap();
    assert_eq!(attributes, [Attribute::KeyType(KeyType::DES3), Attribute::ValueLen(24.into())]);
    let des3_key = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::KeyType(KeyType::DES3)];
    let found = s.find_objects(&des3_key).unwrap();
    assert_eq!(found, [generated], "a search by CKK_DES3 finds the key");

    let imported =
        s.create_object(&[&des3_key[..], &usable[..], &[Attribute::Value(SP800_67_KEY.to_vec())]].concat()).unwrap();
    let known = [
        (Mechanism::Des3Ecb, &SP800_67_ECB[..]),
        (Mechanism::Des3Cbc(DES3_IV), &OPENSSL_CBC_PAD[..24]),
        (Mechanism::Des3CbcPad(DES3_IV), &OPENSSL_CBC_PAD[..]),
    ];
    for (m, want) in &known {
        assert_eq!(s.encrypt(ran.mark(m), imported, SP800_67_PLAINTEXT).unwrap(), *want, "{m:?}");
        assert_eq!(s.decrypt(m, imported, want).unwrap(), SP800_67_PLAINTEXT, "{m:?}");
        // In parts, as AES works.
        s.encrypt_init(m, generated).unwrap();
        let mut sealed = s.encrypt_update(&SP800_67_PLAINTEXT[..5]).unwrap();
        sealed.extend(s.encrypt_update(&SP800_67_PLAINTEXT[5..]).unwrap());
        sealed.extend(s.encrypt_final().unwrap());
        assert_eq!(sealed.len(), want.len(), "{m:?}");
        s.decrypt_init(m, generated).unwrap();
        let mut opened = s.decrypt_update(&sealed[..11]).unwrap();
        opened.extend(s.decrypt_update(&sealed[11..]).unwrap());
        opened.extend(s.decrypt_final().unwrap());
        assert_eq!(opened, SP800_67_PLAINTEXT, "{m:?}");
    }
    // A triple DES key wraps (AES key wrap) and unwraps as CKK_DES3.
    let aes = [Attribute::ValueLen(32.into()), Attribute::Wrap(true), Attribute::Unwrap(true)];
    let aes = s.generate_key(&Mechanism::AesKeyGen, &aes).unwrap();
    let extractable = s
        .create_object(
            &[&des3_key[..], &usable[..], &[Attribute::Extractable(true), Attribute::Value(SP800_67_KEY.to_vec())]]
                .concat(),
        )
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrap, aes, extractable).unwrap();
    let unwrapped =
        s.unwrap_key(&Mechanism::AesKeyWrap, aes, &wrapped, &[&des3_key[..], &usable[..]].concat()).unwrap();
    assert_eq!(s.encrypt(&Mechanism::Des3Ecb, unwrapped, SP800_67_PLAINTEXT).unwrap(), SP800_67_ECB);

    assert_eq!(ran.0, des3, "every triple DES mechanism ran");
    drop(s);
    pkcs11.finalize().unwrap();
}
