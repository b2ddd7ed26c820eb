//! No secret leaves the HSM in the clear where an operator or a client could
//! read it: a full flow against a daemon process logging at `trace` (every
//! crate, JSON) with its audit log on, then a search of its standard error,
//! its audit log and every error message the client saw for the passwords,
//! session tokens and key material the flow used.

use hsm_client::{
    ChangePassword, CreateUser, Decrypt, Encrypt, KeyOptions, Role, Sign,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use hsm_proto::{
    SESSION_METADATA_KEY,
    v1::{LoginRequest, PingRequest, session_service_client::SessionServiceClient},
};
use integration_tests::process::ClusterDir;
use tonic::{Request, metadata::MetadataValue};

const ADMIN_PASSWORD: &str = "Adm1n-Secret-Pass-7q2";
const ALICE_PASSWORD: &str = "Al1ce-Secret-Pass-9k4";
const WRONG_PASSWORD: &str = "Wr0ng-Secret-Pass-3x8";
const NEW_ALICE_PASSWORD: &str = "Al1ce-Newer-Pass-5m1";
/// An AES-256 key with a pattern no log line has by chance.
const AES_KEY: [u8; 32] = [
    0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15, 0xf3, 0x9c, 0xc0, 0x60, 0x5c, 0xed, 0xc8, 0x34, 0x10, 0x82, 0x27,
    0x6b, 0xf3, 0xa2, 0x72, 0x04, 0xda, 0x8f, 0x2d, 0x5e, 0x61, 0x3c, 0x84, 0xb1,
];
/// A P-256 private key (scalar below), imported as PEM.
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEXCGcXc/Ren/7cLD
GtJ2F8fL/PW7nsrOiO6iTpA9hAmhRANCAAT3NjoLkwrKgVy7ZnlEf82Z4GmAz8J1
+FDa6POGzqyXEMdCtNmrBF3iq4ue+/QjIQDnvgUxWe9reqBmZjPN0A2D
-----END PRIVATE KEY-----
";
const EC_SCALAR_HEX: &str = "11708671773f45e9ffedc2c31ad27617c7cbfcf5bb9ecace88eea24e903d8409";

#[tokio::test]
async fn no_secret_reaches_a_log_an_audit_record_or_an_error() {
    let cluster = ClusterDir::init(1);
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0", "--log-format", "json"], &[("HSM_LOG", "trace")]);
    let client = daemon.client().await;
    let mut errors: Vec<String> = Vec::new();

    client.activate(ADMIN_PASSWORD).await.unwrap();
    let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap();
    errors.push(client.login("alice", Role::CryptoUser, WRONG_PASSWORD).await.unwrap_err().to_string());
    errors.push(
        admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap_err().to_string(),
    );

    // A raw login, to know the session token the HSM handed out.
    let mut sessions = SessionServiceClient::new(client.channel());
    let token = sessions
        .login(LoginRequest {
            username: "alice".into(),
            role: hsm_proto::v1::Role::CryptoUser.into(),
            password: ALICE_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .session_token;
    let with_token = |token: &str| {
        let mut request = Request::new(PingRequest {});
        request
            .metadata_mut()
            .insert(SESSION_METADATA_KEY, MetadataValue::try_from(format!("Bearer {token}")).unwrap());
        request
    };
    sessions.ping(with_token(&token)).await.unwrap();
    // A token with its secret changed, and garbage.
    let forged = format!("{}{}", &token[..token.len() - 4], "AAAA");
    errors.push(sessions.ping(with_token(&forged)).await.unwrap_err().message().to_owned());
    errors.push(sessions.ping(with_token("not-a-token")).await.unwrap_err().message().to_owned());

    let alice = client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let usable = |attribute: &str| KeyOptions {
        attributes: vec![(attribute.into(), "true".into()), ("decrypt".into(), "true".into())],
        ..KeyOptions::default()
    };
    let aes = alice.import_secret(SymmetricKeyType::Aes, &AES_KEY, &usable("encrypt")).await.unwrap();
    let sealed = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesGcm, b"attack at dawn")).await.unwrap();
    let opened = alice.decrypt(Decrypt::new(&aes.reference, Cipher::AesGcm, &sealed.1).iv(&sealed.0)).await.unwrap();
    assert_eq!(opened, b"attack at dawn");
    let ec = alice.import_pem(EC_PEM, &usable("sign")).await.unwrap();
    alice.sign(Sign::new(&ec.reference, SignMechanism::Ecdsa, b"data").hash(HashAlgorithm::Sha256)).await.unwrap();
    // Refusals that name the key: importing it again with a bad attribute,
    // and an admin using it.
    let bad = KeyOptions { attributes: vec![("no-such-attribute".into(), "true".into())], ..KeyOptions::default() };
    errors.push(alice.import_secret(SymmetricKeyType::Aes, &AES_KEY, &bad).await.unwrap_err().to_string());
    errors.push(alice.import_pem(EC_PEM, &bad).await.unwrap_err().to_string());
    errors.push(
        admin
            .sign(Sign::new(&ec.reference, SignMechanism::Ecdsa, b"x").hash(HashAlgorithm::Sha256))
            .await
            .unwrap_err()
            .to_string(),
    );
    alice.change_password(ChangePassword::new("alice", Role::CryptoUser, NEW_ALICE_PASSWORD)).await.unwrap();
    errors.push(client.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap_err().to_string());

    let stderr = tokio::task::spawn_blocking(move || daemon.terminate()).await.unwrap();
    let audit = std::fs::read_to_string(cluster.data_dir().join("audit.log")).unwrap();
    assert!(stderr.lines().filter(|l| l.contains("\"TRACE\"")).count() > 10, "HSM_LOG=trace logged no trace lines");
    assert!(audit.contains("CN_CREATE_OBJECT") && audit.contains("CN_LOGIN"), "{audit}");

    let secret_part = token.split_once('.').map_or(token.as_str(), |(_, secret)| secret).to_owned();
    let pem_body: String = EC_PEM.lines().filter(|l| !l.starts_with("-----")).collect();
    let secrets: Vec<(&str, String)> = vec![
        ("admin password", ADMIN_PASSWORD.into()),
        ("alice's password", ALICE_PASSWORD.into()),
        ("a wrong password", WRONG_PASSWORD.into()),
        ("alice's new password", NEW_ALICE_PASSWORD.into()),
        ("a session token", token.clone()),
        ("a session token's secret", secret_part),
        ("the AES key (hex)", hex::encode(AES_KEY)),
        ("the AES key (HEX)", hex::encode_upper(AES_KEY)),
        ("the AES key (bytes as a list)", format!("{:?}", &AES_KEY[..8]).trim_end_matches(']').to_owned()),
        ("the EC key's PEM", pem_body[..40].to_owned()),
        ("the EC scalar (hex)", EC_SCALAR_HEX.into()),
    ];
    for (place, text) in [("the daemon's log", stderr.as_str()), ("the audit log", audit.as_str())]
        .into_iter()
        .chain(errors.iter().map(|e| ("an error message", e.as_str())))
    {
        for (what, secret) in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} appears in {place}");
        }
    }
}
