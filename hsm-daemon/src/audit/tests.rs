use std::io::Write;

use super::{verify::verify_bytes, *};

fn login(user: &str) -> Event {
    Event {
        opcode: "CN_LOGIN",
        rpc: "/hsm.v1.SessionService/Login",
        session: Some(1),
        user: Some(user.to_owned()),
        role: Some("admin"),
        response: "OK",
        ..Event::default()
    }
}

fn file_of(dir: &tempfile::TempDir) -> Vec<u8> {
    std::fs::read(dir.path().join(AUDIT_FILE)).unwrap()
}

#[test]
fn records_chain_and_continue_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(Some(dir.path()), "hsm-a").unwrap();
    assert_eq!(log.append_blocking(&login("admin")).unwrap(), 2, "the start record is 1");
    drop(log);
    let log = AuditLog::open(Some(dir.path()), "hsm-a").unwrap();
    assert_eq!(log.append_blocking(&login("alice")).unwrap(), 4);

    let (records, last) = log.read(1, 100).unwrap();
    assert_eq!(last, 4);
    let seqs: Vec<u64> = records.iter().map(|r| r.body.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let boots: Vec<u64> = records.iter().map(|r| r.body.boot).collect();
    assert_eq!(boots, [1, 1, 2, 2], "each start is a boot");
    assert_eq!(records[2].body.opcode, START_OPCODE);
    assert_eq!(records[0].body.prev, GENESIS);
    for pair in records.windows(2) {
        assert_eq!(pair[1].body.prev, pair[0].hash);
    }
    assert!(records.iter().all(|r| r.intact));
    assert_eq!(records[3].body.user.as_deref(), Some("alice"));

    let (count, head) = verify_bytes(&file_of(&dir)).unwrap();
    assert_eq!((count, head), (4, records[3].hash.clone()));
}

#[test]
fn reads_page_from_a_sequence_number() {
    let log = AuditLog::open(None, "hsm-a").unwrap();
    for _ in 0..5 {
        log.append_blocking(&login("admin")).unwrap();
    }
    let (page, last) = log.read(3, 2).unwrap();
    assert_eq!(last, 6);
    assert_eq!(page.iter().map(|r| r.body.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(log.read(7, 10).unwrap().0.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(Some(dir.path()), "hsm-a").unwrap();
    for _ in 0..5 {
        log.append_blocking(&login("admin")).unwrap();
    }
    assert_eq!(log.read(5, 10).unwrap().0.iter().map(|r| r.body.seq).collect::<Vec<_>>(), [5, 6]);
}

#[test]
fn every_single_byte_change_is_detected() {
    let log = AuditLog::open(None, "hsm-a").unwrap();
    log.append_blocking(&login("admin")).unwrap();
    log.append_blocking(&Event { key_refs: vec!["0x0000000000100001".into()], ..login("alice") }).unwrap();
    let lines = log.chain().memory.clone();
    let good: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
    assert!(verify_bytes(&good).is_ok());
    for at in 0..good.len() {
        for replacement in [b'x', b'0', b'\n'] {
            if good[at] == replacement {
                continue;
            }
            let mut bad = good.clone();
            bad[at] = replacement;
            assert!(verify_bytes(&bad).is_err(), "byte {at} changed to {:?} went unnoticed", replacement as char);
        }
    }
}

#[test]
fn verification_names_the_first_bad_line_and_why() {
    let log = AuditLog::open(None, "hsm-a").unwrap();
    log.append_blocking(&login("admin")).unwrap();
    log.append_blocking(&login("bob")).unwrap();
    let lines = log.chain().memory.clone();
    let join = |lines: &[String]| lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect::<Vec<u8>>();

    let edited = [lines[0].clone(), lines[1].replace("\"admin\"", "\"eve\""), lines[2].clone()];
    let (line, seq, why) = verify_bytes(&join(&edited)).unwrap_err();
    assert_eq!((line, seq), (2, Some(2)));
    assert!(why.contains("hash mismatch"), "{why}");

    let dropped = [lines[0].clone(), lines[2].clone()];
    let (line, _, why) = verify_bytes(&join(&dropped)).unwrap_err();
    assert_eq!(line, 2);
    assert!(why.contains("sequence gap"), "{why}");

    let (line, _, why) = verify_bytes(&join(&[lines[0].clone(), "not json".into()])).unwrap_err();
    assert_eq!(line, 2);
    assert!(why.contains("unparsable"), "{why}");

    let mut torn = join(&lines);
    torn.pop();
    let (line, _, why) = verify_bytes(&torn).unwrap_err();
    assert_eq!(line, 3);
    assert!(why.contains("incomplete last line"), "{why}");

    // A record re-hashed after its edit still breaks the next one's link.
    let mut forged: Body = Record::parse(&lines[1]).unwrap().body;
    forged.user = Some("eve".into());
    let (forged_line, _) = forged.seal().unwrap();
    let (line, seq, why) = verify_bytes(&join(&[lines[0].clone(), forged_line, lines[2].clone()])).unwrap_err();
    assert_eq!((line, seq), (3, Some(3)));
    assert!(why.contains("broken link"), "{why}");
}

#[test]
fn a_torn_last_line_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(Some(dir.path()), "hsm-a").unwrap();
    log.append_blocking(&login("admin")).unwrap();
    drop(log);
    let path = dir.path().join(AUDIT_FILE);
    let intact = std::fs::read(&path).unwrap();
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"seq\":3,\"time\":\"20").unwrap();
    drop(file);
    assert!(verify_bytes(&std::fs::read(&path).unwrap()).is_err());

    let log = AuditLog::open(Some(dir.path()), "hsm-a").unwrap();
    assert_eq!(log.last_seq(), 3, "the torn record's number is used by this start's record");
    let now = std::fs::read(&path).unwrap();
    assert_eq!(&now[..intact.len()], &intact[..]);
    assert_eq!(verify_bytes(&now).unwrap().0, 3);
}

#[test]
fn a_log_whose_last_record_was_altered_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    AuditLog::open(Some(dir.path()), "hsm-a").unwrap().append_blocking(&login("admin")).unwrap();
    let path = dir.path().join(AUDIT_FILE);
    let text = std::fs::read_to_string(&path).unwrap().replace("\"admin\"", "\"eve\"");
    std::fs::write(&path, text).unwrap();
    let err = AuditLog::open(Some(dir.path()), "hsm-a").unwrap_err();
    assert!(matches!(err, AuditError::DamagedTail { .. }), "{err}");
}

#[test]
fn logs_are_found_in_a_data_dir_or_its_subdirectories() {
    let dir = tempfile::tempdir().unwrap();
    assert!(verify::logs_in(dir.path()).unwrap().is_empty());
    for hsm in ["hsm-2-data", "hsm-1-data"] {
        AuditLog::open(Some(&dir.path().join(hsm)), hsm).unwrap();
    }
    let found = verify::logs_in(dir.path()).unwrap();
    assert_eq!(found, [dir.path().join("hsm-1-data/audit.log"), dir.path().join("hsm-2-data/audit.log")]);
    let one = verify::verify_file(&found[0]).unwrap();
    assert_eq!(one.records, 1);
    assert_eq!(verify::logs_in(&dir.path().join("hsm-1-data")).unwrap(), [found[0].clone()]);
}
