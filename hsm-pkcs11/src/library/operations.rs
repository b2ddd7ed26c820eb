//! The cryptographic operations of a session: one of each kind (a [`Slot`])
//! active at once, from its `Init` through its parts to the call that
//! ends it, and the HSM call each makes; random numbers.

use cryptoki_sys::{
    CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY,
    CKR_ARGUMENTS_BAD, CKR_DATA_LEN_RANGE, CKR_DEVICE_ERROR, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_GENERAL_ERROR,
    CKR_HOST_MEMORY, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT,
    CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE,
};
use hsm_client::{ClientError, Decrypt, Encrypt, Sign, Verify, keys::HashAlgorithm};
use zeroize::Zeroizing;

use super::{Library, lock};
use crate::{
    error::{Doing, rv},
    mechanism::{self, Ciphering, Family, Input, IvOut, MAX_DATA_LEN, Mechanism, Signing},
    object,
};

/// The kinds of operation a session can have active, one of each at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
    Digest,
}

impl Slot {
    fn index(self) -> usize {
        self as usize
    }

    /// What a refusal of the input means here: more than the HSM takes
    /// is, to a decryption, a ciphertext no encryption made
    /// (`CKR_ENCRYPTED_DATA_LEN_RANGE`).
    fn input_error(self, rv: CK_RV) -> CK_RV {
        if self == Slot::Decrypt && rv == CKR_DATA_LEN_RANGE { CKR_ENCRYPTED_DATA_LEN_RANGE } else { rv }
    }
}

/// An operation between its `Init` and its end.
#[derive(Debug)]
pub(super) struct Operation {
    kind: Kind,
    input: Input,
    /// The result, made by the first call that needed it and kept until a
    /// call with room for it takes it (PKCS#11's length protocol).
    output: Option<Zeroizing<Vec<u8>>>,
}

#[derive(Debug)]
enum Kind {
    Sign { reference: String, signing: Signing },
    Verify { reference: String, signing: Signing, signature_len: Option<usize> },
    Encrypt { reference: String, ciphering: Ciphering },
    Decrypt { reference: String, ciphering: Ciphering },
    Digest { hash: HashAlgorithm },
}

/// A mechanism read for a keyed operation.
#[derive(Debug)]
enum Parsed {
    Signing(Signing),
    Ciphering(Ciphering),
}

/// The outcome of a call that hands back bytes, before they are copied
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// The caller asked for the length (or gave too little room: `fits`
    /// false); the operation goes on.
    Length {
        len: usize,
        fits: bool,
    },
    Bytes(Zeroizing<Vec<u8>>),
}

/// [`Output`], and an IV the HSM made that goes back to the caller's
/// parameter (AES-GCM encryption), the first time the result is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Produced {
    pub(crate) output: Output,
    pub(crate) iv: Option<(IvOut, Vec<u8>)>,
}

/// The length protocol over a finished result.
pub(super) fn offer(bytes: &[u8], room: Option<usize>) -> Option<Output> {
    match room {
        None => Some(Output::Length { len: bytes.len(), fits: true }),
        Some(room) if room < bytes.len() => Some(Output::Length { len: bytes.len(), fits: false }),
        Some(_) => None,
    }
}

impl Library {
    /// `len` bytes from the HSMs' generators, in calls of at most 16 KiB.
    pub(crate) fn random(&self, handle: CK_SESSION_HANDLE, len: usize) -> Result<Zeroizing<Vec<u8>>, CK_RV> {
        self.session(handle)?;
        let login = self.logged_in()?;
        let mut out = Zeroizing::new(Vec::new());
        out.try_reserve_exact(len).map_err(|_| CKR_HOST_MEMORY)?;
        while out.len() < len {
            let n = (len - out.len()).min(MAX_DATA_LEN);
            let n32 = u32::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)?;
            let chunk = self.call(&login, Doing::Using, login.session.generate_random(n32))?;
            if chunk.len() != n {
                return Err(CKR_DEVICE_ERROR);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Starts an operation of `slot`'s kind with `mechanism` (and `key`,
    /// for all but digests), unless one is already active.
    pub(crate) fn begin(
        &self,
        handle: CK_SESSION_HANDLE,
        slot: Slot,
        mechanism: &Mechanism,
        key: Option<CK_OBJECT_HANDLE>,
    ) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        if session.operations[slot.index()].is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let operation = self.operation(slot, mechanism, key)?;
        session.operations[slot.index()] = Some(operation);
        Ok(())
    }

    /// Whether `slot`'s operation is active: `CKR_OPERATION_NOT_INITIALIZED`
    /// if not.
    pub(crate) fn operation_active(&self, handle: CK_SESSION_HANDLE, slot: Slot) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let active = lock(&session).operations[slot.index()].is_some();
        if active { Ok(()) } else { Err(CKR_OPERATION_NOT_INITIALIZED) }
    }

    /// Ends `slot`'s operation, if one is active.
    pub(crate) fn end(&self, handle: CK_SESSION_HANDLE, slot: Slot) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        lock(&session).operations[slot.index()] = None;
        Ok(())
    }

    /// Takes a part of the data. A failure ends the operation.
    pub(crate) fn update(&self, handle: CK_SESSION_HANDLE, slot: Slot, data: &[u8]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let operation = session.operations[slot.index()].as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if operation.output.is_some() {
            // A single-part call already made the result.
            return Err(CKR_OPERATION_ACTIVE);
        }
        let result = operation.input.update(data).map_err(|e| slot.input_error(e));
        if result.is_err() {
            session.operations[slot.index()] = None;
        }
        result
    }

    /// Finishes a sign, encrypt, decrypt or digest operation: single-part
    /// with `data`, or the last step of a multi-part one without. With
    /// `room` `None` (or too small) says how long the result is, and the
    /// operation goes on; any other outcome ends it.
    pub(crate) fn finish(
        &self,
        handle: CK_SESSION_HANDLE,
        slot: Slot,
        data: Option<&[u8]>,
        room: Option<usize>,
    ) -> Result<Produced, CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let ops = &mut session.operations[slot.index()];
        let operation = ops.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let mut iv = None;
        if operation.output.is_none() {
            let made = data
                .map_or(Ok(()), |d| operation.input.update(d).map_err(|e| slot.input_error(e)))
                .and_then(|()| self.run(operation));
            match made {
                Ok((bytes, back)) => {
                    operation.output = Some(bytes);
                    iv = back;
                }
                Err(e) => {
                    *ops = None;
                    return Err(e);
                }
            }
        }
        let bytes = operation.output.as_ref().ok_or(CKR_GENERAL_ERROR)?;
        let output = match offer(bytes, room) {
            Some(length) => length,
            None => Output::Bytes(ops.take().and_then(|o| o.output).ok_or(CKR_GENERAL_ERROR)?),
        };
        Ok(Produced { output, iv })
    }

    /// Verifies `signature` over the data (`data`, single-part, or what
    /// the updates gave), ending the operation.
    pub(crate) fn verify(&self, handle: CK_SESSION_HANDLE, data: Option<&[u8]>, signature: &[u8]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut operation =
            lock(&session).operations[Slot::Verify.index()].take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let Kind::Verify { reference, signing, signature_len } = &operation.kind else {
            return Err(CKR_GENERAL_ERROR);
        };
        if signature_len.is_some_and(|n| n != signature.len()) {
            return Err(CKR_SIGNATURE_LEN_RANGE);
        }
        if let Some(data) = data {
            operation.input.update(data)?;
        }
        let r = signing.request(std::mem::take(&mut operation.input))?;
        let login = self.logged_in()?;
        let verify = login.session.verify(Verify {
            hash: r.hash,
            data_is_digest: r.is_digest,
            ..Verify::new(reference, r.mechanism, &r.data, signature)
        });
        let valid = self.call(&login, Doing::Using, verify)?;
        if valid { Ok(()) } else { Err(CKR_SIGNATURE_INVALID) }
    }

    /// Runs an operation's HSM call over its whole input: the result, and
    /// an IV the HSM made for the caller's parameter.
    #[expect(clippy::type_complexity, reason = "the result and the IV to hand back, used once")]
    fn run(&self, operation: &mut Operation) -> Result<(Zeroizing<Vec<u8>>, Option<(IvOut, Vec<u8>)>), CK_RV> {
        let login = self.logged_in()?;
        let input = std::mem::take(&mut operation.input);
        match &operation.kind {
            Kind::Sign { reference, signing } => {
                let r = signing.request(input)?;
                let sign = login.session.sign(Sign {
                    hash: r.hash,
                    data_is_digest: r.is_digest,
                    ..Sign::new(reference, r.mechanism, &r.data)
                });
                Ok((Zeroizing::new(self.call(&login, Doing::Using, sign)?), None))
            }
            Kind::Encrypt { reference, ciphering: c } => {
                let data = input.finish();
                c.check_len(data.len())?;
                let encrypt = login.session.encrypt(Encrypt {
                    hash: c.hash,
                    ..Encrypt::new(reference, c.cipher, &data).iv(&c.iv).aad(&c.aad)
                });
                let (iv, ciphertext) = self.call(&login, Doing::Using, encrypt)?;
                Ok((Zeroizing::new(ciphertext), c.iv_out.map(|out| (out, iv))))
            }
            Kind::Decrypt { reference, ciphering: c } => {
                let data = input.finish();
                c.check_len(data.len())?;
                let plaintext = self
                    .runtime
                    .block_on(login.session.decrypt(Decrypt {
                        hash: c.hash,
                        ..Decrypt::new(reference, c.cipher, &data).iv(&c.iv).aad(&c.aad)
                    }))
                    .map_err(|e| match e {
                        // A ciphertext that does not open (tag, padding).
                        ClientError::InvalidArgument(_) => cryptoki_sys::CKR_ENCRYPTED_DATA_INVALID,
                        e => rv(&e, Doing::Using, login.admin),
                    })?;
                Ok((Zeroizing::new(plaintext), None))
            }
            Kind::Digest { hash } => {
                let data = input.finish();
                let digest = self.call(&login, Doing::Using, login.session.digest(*hash, &data))?;
                Ok((Zeroizing::new(digest), None))
            }
            Kind::Verify { .. } => Err(CKR_GENERAL_ERROR),
        }
    }

    /// Checks a mechanism (and key) for one kind of operation.
    fn operation(&self, slot: Slot, mechanism: &Mechanism, key: Option<CK_OBJECT_HANDLE>) -> Result<Operation, CK_RV> {
        self.permit(mechanism.kind)?;
        let parsed = match slot {
            Slot::Digest => {
                let hash = mechanism::digesting(mechanism)?;
                self.logged_in()?;
                return Ok(Operation { kind: Kind::Digest { hash }, input: Input::default(), output: None });
            }
            Slot::Sign | Slot::Verify => Parsed::Signing(Signing::from_mechanism(mechanism)?),
            Slot::Encrypt | Slot::Decrypt => {
                Parsed::Ciphering(Ciphering::from_mechanism(mechanism, slot == Slot::Encrypt)?)
            }
        };
        let family = match &parsed {
            Parsed::Signing(signing) => signing.family,
            Parsed::Ciphering(ciphering) => ciphering.family,
        };
        self.logged_in()?;
        let key = key.ok_or(CKR_KEY_HANDLE_INVALID)?;
        let info = self.key_for(key, Some(family), CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT)?;
        let (classes, flag): ([CK_OBJECT_CLASS; 2], &str) = match slot {
            Slot::Sign => ([CKO_PRIVATE_KEY, CKO_SECRET_KEY], "sign"),
            Slot::Verify => ([CKO_PUBLIC_KEY, CKO_SECRET_KEY], "verify"),
            Slot::Encrypt => ([CKO_PUBLIC_KEY, CKO_SECRET_KEY], "encrypt"),
            _ => ([CKO_PRIVATE_KEY, CKO_SECRET_KEY], "decrypt"),
        };
        if !object::class(&info).is_some_and(|c| classes.contains(&c)) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        if info.attribute(flag) != Some("true") {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let reference = info.reference.clone();
        // Raw RSA's length rules are the modulus's.
        let modulus_len = object::signature_len(&info).filter(|_| family == Family::Rsa);
        let parsed = match parsed {
            Parsed::Signing(signing) => Parsed::Signing(signing.for_modulus(modulus_len)),
            Parsed::Ciphering(ciphering) => Parsed::Ciphering(ciphering.for_modulus(modulus_len)),
        };
        let (kind, input) = match (slot, parsed) {
            (Slot::Sign, Parsed::Signing(signing)) => (Kind::Sign { reference, signing }, signing.input()),
            (_, Parsed::Signing(signing)) => {
                let signature_len = signing.fixed_len().or_else(|| object::signature_len(&info));
                (Kind::Verify { reference, signing, signature_len }, signing.input())
            }
            (Slot::Encrypt, Parsed::Ciphering(ciphering)) => (Kind::Encrypt { reference, ciphering }, Input::default()),
            (_, Parsed::Ciphering(ciphering)) => (Kind::Decrypt { reference, ciphering }, Input::default()),
        };
        Ok(Operation { kind, input, output: None })
    }
}
