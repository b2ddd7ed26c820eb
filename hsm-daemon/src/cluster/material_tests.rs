//! Material made, read back, cloned, placed and damaged.

use rand::{SeedableRng, rngs::StdRng};

use super::*;

#[test]
fn material_is_created_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let first = ClusterMaterial::load_or_create(dir.path(), &NewMaterial::default(), &mut rng).unwrap();
    let again = ClusterMaterial::load_or_create(dir.path(), &NewMaterial::default(), &mut rng).unwrap();
    assert_eq!(first.cluster_id, again.cluster_id);
    assert_eq!(first.ca.cert_pem, again.ca.cert_pem);
    assert_eq!(first.appliance_password.expose(), again.appliance_password.expose());
    let mode = fs::metadata(dir.path().join("ca.key")).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    let env = fs::read_to_string(first.write_client_env(&["127.0.0.1:1".into()]).unwrap()).unwrap();
    assert!(env.starts_with("HSM_ENDPOINTS=127.0.0.1:1\nHSM_CA_CERT=/"), "{env}");
}

#[test]
fn a_clone_has_its_own_identity_and_its_sources_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    let source = ClusterMaterial::load_or_create(&a, &NewMaterial::default(), &mut rng).unwrap();
    let clone = ClusterMaterial::create_clone(&b, &a, &NewMaterial::default(), &mut rng).unwrap();
    assert_ne!(clone.cluster_id, source.cluster_id);
    assert_ne!(clone.ca.cert_pem, source.ca.cert_pem);
    assert_eq!(clone.masking_origin.as_ref(), Some(&source.cluster_id));
    for key in [CLUSTER_KEY, MASKING_KEY] {
        assert_eq!(fs::read(a.join(key)).unwrap(), fs::read(b.join(key)).unwrap(), "{key}");
    }
    // Read back, and a clone of the clone descends from the source.
    assert_eq!(ClusterMaterial::load(&clone.dir).unwrap().masking_origin, Some(source.cluster_id.clone()));
    let grandchild = ClusterMaterial::create_clone(&c, &b, &NewMaterial::default(), &mut rng).unwrap();
    assert_eq!(grandchild.masking_origin, Some(source.cluster_id.clone()));
    // Refused: the source's own id, an occupied directory, no source.
    let same_id = NewMaterial { cluster_id: Some(source.cluster_id.clone()), ..NewMaterial::default() };
    let same = ClusterMaterial::create_clone(&dir.path().join("d"), &a, &same_id, &mut rng);
    assert!(same.unwrap_err().to_string().contains("needs its own cluster id"));
    let occupied = ClusterMaterial::create_clone(&b, &a, &NewMaterial::default(), &mut rng).unwrap_err().to_string();
    assert!(occupied.contains("already holds cluster material"), "{occupied}");
    let nothing =
        ClusterMaterial::create_clone(&dir.path().join("e"), &dir.path().join("d"), &NewMaterial::default(), &mut rng);
    assert!(nothing.is_err());
}

#[test]
fn a_placed_hsm_names_its_hosts_and_the_served_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut material = ClusterMaterial::load_or_create(dir.path(), &NewMaterial::default(), &mut rng).unwrap();
    material.served_dir = PathBuf::from("/material");
    let placement = HsmPlacement {
        listen: "0.0.0.0:2225".parse().unwrap(),
        hosts: vec!["hsm-1".into(), "127.0.0.1".into()],
        data_dir: Some(PathBuf::from("/data")),
    };
    assert_eq!(placement.certificate_names("hsm-x"), ["localhost", "127.0.0.1", "hsm-1", "hsm-x"]);
    let path = material.init_hsm(1, &placement, HsmType::Hsm2mMedium, ClusterMode::NonFips, &mut rng).unwrap();
    let settings = Settings::from_file(&path).unwrap();
    assert_eq!(settings.mode.as_deref(), Some("NON_FIPS"));
    assert_eq!(settings.listen, Some("0.0.0.0:2225".parse().unwrap()));
    assert_eq!(settings.data_dir.as_deref(), Some(Path::new("/data")));
    assert_eq!(settings.tls_cert.as_deref(), Some(Path::new("/material/hsm-1.pem")));
    assert_eq!(settings.ca_cert.as_deref(), Some(Path::new("/material/ca.pem")));
    assert!(!dir.path().join("hsm-1-data").exists(), "the data directory is the HSM's own, not made here");
    assert!(dir.path().join("hsm-1.master-key").exists());
}

#[test]
fn client_files_carry_the_ca_and_take_the_directory_owner() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(8);
    let material = ClusterMaterial::load_or_create(&dir.path().join("m"), &NewMaterial::default(), &mut rng).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    // As root the directory can belong to someone else, and the files
    // must follow it; otherwise they are the writer's, like the directory.
    let owner = match std::os::unix::fs::lchown(&out, Some(12_345), Some(12_346)) {
        Ok(()) => (12_345, 12_346),
        Err(_) => {
            let meta = fs::metadata(&out).unwrap();
            (meta.uid(), meta.gid())
        }
    };
    let endpoints = ["127.0.0.1:2231".to_owned(), "127.0.0.1:2232".to_owned()];
    let env = material.write_client_files(&out, &endpoints, Some(Path::new("deploy/out/ca.pem"))).unwrap();
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        "HSM_ENDPOINTS=127.0.0.1:2231,127.0.0.1:2232\nHSM_CA_CERT=deploy/out/ca.pem\n"
    );
    assert_eq!(fs::read_to_string(out.join("ca.pem")).unwrap(), material.ca.cert_pem);
    for path in [env, out.join("ca.pem")] {
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), owner, "{}", path.display());
    }
    let env = material.write_client_files(&out, &endpoints, None).unwrap();
    assert!(fs::read_to_string(env).unwrap().ends_with(&format!("HSM_CA_CERT={}\n", out.join("ca.pem").display())));
}

#[test]
fn damaged_material_is_refused_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(6);
    ClusterMaterial::load_or_create(dir.path(), &NewMaterial::default(), &mut rng).unwrap();
    fs::write(dir.path().join("cluster-id"), "not-a-cluster").unwrap();
    let err = ClusterMaterial::load_or_create(dir.path(), &NewMaterial::default(), &mut rng).unwrap_err().to_string();
    assert!(err.contains("cluster-id: invalid cluster_id"), "{err}");
}
