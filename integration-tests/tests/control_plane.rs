//! The CloudHSM v2 API as AWS's own clients drive it: boto3 over both wire
//! protocols (`aws/control_plane.py`: every operation of the service model
//! and its documented errors, against real clusters and HSMs), and the
//! AWS CLI's errors as a shell user sees them.

use hsm_daemon::testing::TestControlPlane;
use integration_tests::{aws, bin_dir, docs::root};

async fn boto3_suite(protocol: &str) {
    let Some(venv) = aws::venv(&format!("boto3 over {protocol}")) else { return };
    let server = TestControlPlane::start().await;
    let script = root().join("integration-tests/aws/control_plane.py");
    let hsm_cli = bin_dir().join("hsm-cli");
    let dir = server.dir().to_str().expect("path").to_owned();
    let env = [("HSM_API_PROTOCOL", protocol), ("HSM_CLI", hsm_cli.to_str().expect("path")), ("HSM_API_DIR", &dir)];
    let output = aws::run(&venv, "python", &[script.to_str().expect("path")], &server.endpoint_url(), &env).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the boto3 suite over {protocol} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("checks passed over {protocol}")), "{stdout}");
    eprintln!("{}", stdout.lines().last().unwrap_or_default());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_operation_over_aws_json() {
    boto3_suite("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_drives_every_operation_over_rpc_v2_cbor() {
    boto3_suite("cbor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_reports_the_services_errors() {
    let Some(venv) = aws::venv("the AWS CLI") else { return };
    let server = TestControlPlane::start().await;
    let endpoint = server.endpoint_url();
    for (args, needle) in [
        (&["describe-clusters", "--filters", "colour=red"][..], "CloudHsmInvalidRequestException"),
        (&["delete-cluster", "--cluster-id", "cluster-aaaaaaaaaaa"], "CloudHsmResourceNotFoundException"),
        (&["create-hsm", "--cluster-id", "nope", "--availability-zone", "us-east-1a"], "regular expression pattern"),
        (&["delete-backup", "--backup-id", "backup-aaaaaaaaaaa"], "CloudHsmResourceNotFoundException"),
    ] {
        let out = aws::run(&venv, "aws", &[&["cloudhsmv2"], args].concat(), &endpoint, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "aws cloudhsmv2 {}: {stderr}", args.join(" "));
        assert!(stderr.contains(needle), "aws cloudhsmv2 {}: wanted {needle} in {stderr}", args.join(" "));
    }
    let create = ["cloudhsmv2", "create-cluster", "--hsm-type", "hsm2m.medium", "--subnet-ids", "subnet-0a1b2c3d"];
    let out = aws::run(
        &venv,
        "aws",
        &[&create[..], &["--query", "Cluster.State", "--output", "text"]].concat(),
        &endpoint,
        &[],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "CREATE_IN_PROGRESS");
    server.stop().await;
}
