"""The CloudHSM v2 API of `hsm-daemon`, driven by boto3 as a user's
provisioning script drives AWS: every operation of the service model and
its documented errors, against real clusters and HSMs.

Run by integration-tests/tests/control_plane.rs, once per wire protocol:
  HSM_API_PROTOCOL=json  botocore's pick when the model lists both
  HSM_API_PROTOCOL=cbor  Smithy RPC v2 CBOR, forced by a copy of botocore's
                         model that lists only it (AWS_DATA_PATH)
with AWS_ENDPOINT_URL_CLOUDHSM_V2 naming the server, HSM_API_CA_DIR a
directory for openssl's files. Prints one line per check; exits 1 on the
first failure, with the reason.
"""

import gzip
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

PROTOCOL = os.environ.get("HSM_API_PROTOCOL", "json")
WORK = tempfile.mkdtemp(prefix="cloudhsmv2-")


def force_protocol():
    """Points botocore at a copy of its cloudhsmv2 model listing only
    `PROTOCOL`, so that the client speaks it."""
    import botocore

    source = os.path.join(os.path.dirname(botocore.__file__), "data", "cloudhsmv2", "2017-04-28", "service-2.json.gz")
    with gzip.open(source) as f:
        model = json.load(f)
    wanted = {"json": "json", "cbor": "smithy-rpc-v2-cbor"}[PROTOCOL]
    model["metadata"]["protocol"] = wanted
    model["metadata"]["protocols"] = [wanted]
    target = os.path.join(WORK, "data", "cloudhsmv2", "2017-04-28")
    os.makedirs(target)
    with open(os.path.join(target, "service-2.json"), "w") as f:
        json.dump(model, f)
    os.environ["AWS_DATA_PATH"] = os.path.join(WORK, "data")


force_protocol()

import boto3  # noqa: E402  (after AWS_DATA_PATH is set)
from botocore.exceptions import ClientError  # noqa: E402

ENDPOINT = os.environ["AWS_ENDPOINT_URL_CLOUDHSM_V2"]


def client(region="us-east-1"):
    return boto3.client(
        "cloudhsmv2",
        endpoint_url=ENDPOINT,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


hsm = client()
west = client("us-west-2")
# What went on the wire: the protocol is checked at the end.
sent = set()
for c in (hsm, west):
    c.meta.events.register("before-send", lambda request, **_: sent.add(request.headers.get("Content-Type", b"")))
assert hsm.meta.service_model.protocol == {"json": "json", "cbor": "smithy-rpc-v2-cbor"}[PROTOCOL], (
    hsm.meta.service_model.protocol
)
checks = 0


def check(name, condition, detail=""):
    global checks
    if not condition:
        print(f"FAIL [{PROTOCOL}] {name}: {detail}")
        sys.exit(1)
    checks += 1
    print(f"ok   [{PROTOCOL}] {name}")


def refused(name, code, call, *args, **kwargs):
    """`call` fails with the model's exception `code`, its message given."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        message = e.response["Error"].get("Message", "")
        check(f"{name} -> {code}", got == code and message, f"got {got}: {message}")
        return message
    check(f"{name} -> {code}", False, "it succeeded")


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=stdin).stdout


def state(cluster_id, region_client=hsm):
    return region_client.describe_clusters(Filters={"clusterIds": [cluster_id]})["Clusters"][0]["State"]


SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]

# --- CreateCluster, DescribeClusters ------------------------------------
created = hsm.create_cluster(
    HsmType="hsm2m.medium", SubnetIds=SUBNETS, TagList=[{"Key": "team", "Value": "crypto"}]
)["Cluster"]
cluster = created["ClusterId"]
check("create-cluster answers CREATE_IN_PROGRESS", created["State"] == "CREATE_IN_PROGRESS", created["State"])
check("timestamps decode as datetimes", created["CreateTimestamp"].year >= 2024, created["CreateTimestamp"])
check("subnets map to zones", created["SubnetMapping"] == {"us-east-1a": SUBNETS[0], "us-east-1b": SUBNETS[1]})
check("then UNINITIALIZED", state(cluster) == "UNINITIALIZED", state(cluster))
refused("create-cluster with an unknown HSM type", "CloudHsmInvalidRequestException",
        hsm.create_cluster, HsmType="hsm9.huge", SubnetIds=SUBNETS)
refused("create-cluster from a missing backup", "CloudHsmResourceNotFoundException",
        hsm.create_cluster, HsmType="hsm2m.medium", SubnetIds=SUBNETS, SourceBackupId="backup-aaaaaaaaaaa")
refused("create-cluster with an aws: tag", "CloudHsmTagException",
        hsm.create_cluster, HsmType="hsm2m.medium", SubnetIds=SUBNETS, TagList=[{"Key": "aws:x", "Value": "y"}])
refused("a malformed subnet id", "CloudHsmInvalidRequestException",
        hsm.create_cluster, HsmType="hsm2m.medium", SubnetIds=["net-1"])
others = [hsm.create_cluster(HsmType="hsm2m.medium", SubnetIds=SUBNETS[:1])["Cluster"]["ClusterId"] for _ in range(2)]
pages = list(hsm.get_paginator("describe_clusters").paginate(PaginationConfig={"PageSize": 1}))
listed = [c["ClusterId"] for p in pages for c in p["Clusters"]]
check("describe-clusters pages one at a time", len(pages) >= 3 and {cluster, *others} <= set(listed), listed)
check("a cluster is listed once", len(listed) == len(set(listed)), listed)
refused("a token from elsewhere", "CloudHsmInvalidRequestException", hsm.describe_clusters, NextToken="garbage")
refused("an unknown filter", "CloudHsmInvalidRequestException", hsm.describe_clusters, Filters={"colour": ["red"]})
check("state filters", all(c["State"] == "UNINITIALIZED" for c in
                           hsm.describe_clusters(Filters={"states": ["UNINITIALIZED"]})["Clusters"]))
check("another region sees none of them",
      not {cluster, *others} & {c["ClusterId"] for c in west.describe_clusters()["Clusters"]})

# --- CreateHsm, the certificates ----------------------------------------
refused("create-hsm in a zone without a subnet", "CloudHsmInvalidRequestException",
        hsm.create_hsm, ClusterId=cluster, AvailabilityZone="us-east-1c")
refused("create-hsm in a missing cluster", "CloudHsmResourceNotFoundException",
        hsm.create_hsm, ClusterId="cluster-aaaaaaaaaaa", AvailabilityZone="us-east-1a")
refused("create-hsm with a malformed cluster id", "CloudHsmInvalidRequestException",
        hsm.create_hsm, ClusterId="cluster-!", AvailabilityZone="us-east-1a")
first = hsm.create_hsm(ClusterId=cluster, AvailabilityZone="us-east-1a")["Hsm"]
check("create-hsm gives an address", first["EniIp"].startswith("127.") and first["HsmId"].startswith("hsm-"), first)
refused("a second HSM before initialization", "CloudHsmInvalidRequestException",
        hsm.create_hsm, ClusterId=cluster, AvailabilityZone="us-east-1b")
certs = hsm.describe_clusters(Filters={"clusterIds": [cluster]})["Clusters"][0]["Certificates"]
for name in ["ClusterCsr", "HsmCertificate", "AwsHardwareCertificate", "ManufacturerHardwareCertificate"]:
    check(f"{name} is shown", "-----BEGIN" in certs.get(name, ""), certs.keys())
files = {}
for name, text in certs.items():
    files[name] = os.path.join(WORK, name + ".pem")
    with open(files[name], "w") as f:
        f.write(text)
for root, hardware in [("aws", "AwsHardwareCertificate"), ("manufacturer", "ManufacturerHardwareCertificate")]:
    path = os.path.join(WORK, root + "-root.pem")
    with urllib.request.urlopen(f"{ENDPOINT}/roots/{root}") as r, open(path, "wb") as f:
        f.write(r.read())
    chain = os.path.join(WORK, root + "-chain.pem")
    with open(chain, "w") as f:
        f.write(open(path).read() + open(files[hardware]).read())
    out = openssl("verify", "-CAfile", chain, files["HsmCertificate"])
    check(f"openssl verifies the HSM certificate to the {root} root", b": OK" in out, out)
check("the CSR's key is the HSM certificate's",
      openssl("x509", "-in", files["HsmCertificate"], "-pubkey", "-noout")
      == openssl("req", "-in", files["ClusterCsr"], "-pubkey", "-noout"))

# --- InitializeCluster ----------------------------------------------------
ca_key, ca_cert = os.path.join(WORK, "customerCA.key"), os.path.join(WORK, "customerCA.crt")
openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_cert, "-days", "3652",
        "-subj", "/CN=customer CA")
signed = os.path.join(WORK, "CustomerHsmCertificate.crt")
openssl("x509", "-req", "-days", "3652", "-in", files["ClusterCsr"], "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-out", signed)
other_key, other_cert = os.path.join(WORK, "other.key"), os.path.join(WORK, "other.crt")
openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", other_key, "-out", other_cert, "-days", "30",
        "-subj", "/CN=someone else")
message = refused("initialize with another CA as the trust anchor", "CloudHsmInvalidRequestException",
                  hsm.initialize_cluster, ClusterId=cluster, SignedCert=open(signed).read(),
                  TrustAnchor=open(other_cert).read())
check("the refusal names the trust anchor", "TrustAnchor" in message, message)
refused("initialize with the trust anchor as the signed certificate", "CloudHsmInvalidRequestException",
        hsm.initialize_cluster, ClusterId=cluster, SignedCert=open(ca_cert).read(), TrustAnchor=open(ca_cert).read())
check("a refused initialization changes nothing", state(cluster) == "UNINITIALIZED")
init = hsm.initialize_cluster(ClusterId=cluster, SignedCert=open(signed).read(), TrustAnchor=open(ca_cert).read())
check("initialize-cluster answers INITIALIZE_IN_PROGRESS", init["State"] == "INITIALIZE_IN_PROGRESS", init)
check("then INITIALIZED", state(cluster) == "INITIALIZED", state(cluster))
refused("initializing twice", "CloudHsmInvalidRequestException",
        hsm.initialize_cluster, ClusterId=cluster, SignedCert=open(signed).read(), TrustAnchor=open(ca_cert).read())
shown = hsm.describe_clusters(Filters={"clusterIds": [cluster]})["Clusters"][0]
check("the cluster certificate is shown", shown["Certificates"].get("ClusterCertificate", "").startswith("-----BEGIN"))

# --- Activation through the HSM, with the customer's CA as the client's ---
refused("an HSM added before activation", "CloudHsmInvalidRequestException",
        hsm.create_hsm, ClusterId=cluster, AvailabilityZone="us-east-1b")


def hsm_cli(ca, *args, at=None, login=None):
    env = dict(os.environ, HSM_ENDPOINTS=f"{at or first['EniIp']}:2223", HSM_CA_CERT=ca)
    if login:
        env["CLOUDHSM_ROLE"], env["CLOUDHSM_PIN"] = login
    return subprocess.run([os.environ["HSM_CLI"], *args], env=env, capture_output=True, text=True)


ADMIN, ALICE = ("admin", "admin:admin-pass"), ("crypto-user", "alice:alice-pass")


distrust = hsm_cli(other_cert, "cluster", "hsm-info")
check("a client trusting another CA is refused by the HSM", distrust.returncode != 0, distrust.stdout)
activated = hsm_cli(ca_cert, "cluster", "activate", "--password", "admin-pass")
check("hsm-cli cluster activate, trusting customerCA.crt", activated.returncode == 0, activated.stdout + activated.stderr)
check("the cluster is then ACTIVE", state(cluster) == "ACTIVE", state(cluster))
made = hsm_cli(ca_cert, "user", "create", "--username", "alice", "--role", "crypto-user", "--password", "alice-pass",
               login=ADMIN)
check("the admin creates a crypto user", made.returncode == 0, made.stdout + made.stderr)
key = hsm_cli(ca_cert, "key", "generate-symmetric", "aes", "--label", "kept-in-backups", "--key-length-bytes", "32",
              login=ALICE)
check("the crypto user makes a key", key.returncode == 0, key.stdout + key.stderr)

# --- HSMs join, backups are taken ------------------------------------------
second = hsm.create_hsm(ClusterId=cluster, AvailabilityZone="us-east-1b")["Hsm"]
check("a second HSM after initialization", second["EniIp"] != first["EniIp"], second)
backups = hsm.describe_backups(Filters={"clusterIds": [cluster]})["Backups"]
check("adding an HSM backs the cluster up", len(backups) == 1 and backups[0]["BackupState"] == "READY", backups)
backup = backups[0]["BackupId"]
check("a backup has an ARN", backups[0]["BackupArn"].endswith(f":backup/{backup}"), backups[0])
refused("delete-hsm naming none", "CloudHsmInvalidRequestException", hsm.delete_hsm, ClusterId=cluster)
refused("delete-hsm of a missing HSM", "CloudHsmResourceNotFoundException",
        hsm.delete_hsm, ClusterId=cluster, HsmId="hsm-aaaaaaaaaaa")
check("delete-hsm by EniId", hsm.delete_hsm(ClusterId=cluster, EniId=first["EniId"])["HsmId"] == first["HsmId"])
hsms = hsm.describe_clusters(Filters={"clusterIds": [cluster]})["Clusters"][0]["Hsms"]
check("the other HSM goes on", [h["HsmId"] for h in hsms] == [second["HsmId"]], hsms)

# --- Backups -----------------------------------------------------------------
b = hsm.modify_backup_attributes(BackupId=backup, NeverExpires=True)["Backup"]
check("modify-backup-attributes --never-expires", b["NeverExpires"] is True, b)
check("neverExpires filter", [x["BackupId"] for x in
                             hsm.describe_backups(Filters={"neverExpires": ["true"]})["Backups"]] == [backup])
deleted = hsm.delete_backup(BackupId=backup)["Backup"]
check("delete-backup: PENDING_DELETION with a date",
      deleted["BackupState"] == "PENDING_DELETION" and "DeleteTimestamp" in deleted, deleted)
refused("deleting it again", "CloudHsmInvalidRequestException", hsm.delete_backup, BackupId=backup)
restored = hsm.restore_backup(BackupId=backup)["Backup"]
check("restore-backup: READY again", restored["BackupState"] == "READY" and "DeleteTimestamp" not in restored)
refused("restoring a READY backup", "CloudHsmInvalidRequestException", hsm.restore_backup, BackupId=backup)
refused("a missing backup", "CloudHsmResourceNotFoundException", hsm.delete_backup, BackupId="backup-aaaaaaaaaaa")
copied = hsm.copy_backup_to_region(DestinationRegion="us-west-2", BackupId=backup)["DestinationBackup"]
check("copy-backup-to-region names its source", copied["SourceBackup"] == backup and copied["SourceRegion"] == "us-east-1")
there = west.describe_backups(Filters={"sourceBackupIds": [backup]})["Backups"]
check("the copy is in us-west-2", len(there) == 1 and there[0]["SourceCluster"] == cluster, there)
refused("copying to its own region", "CloudHsmInvalidRequestException",
        hsm.copy_backup_to_region, DestinationRegion="us-east-1", BackupId=backup)
# A backup whose file the server lost: the copy fails inside, and no copy is left behind.
lost = hsm.create_hsm(ClusterId=cluster, AvailabilityZone="us-east-1a")["Hsm"]  # backs the cluster up
lost_backup = max(hsm.describe_backups(Filters={"clusterIds": [cluster]})["Backups"],
                  key=lambda b: b["CreateTimestamp"])["BackupId"]
os.remove(os.path.join(os.environ["HSM_API_DIR"], "backups", f"{lost_backup}.backup"))
copies_before = len(west.describe_backups()["Backups"])
refused("copying a backup whose file is gone", "CloudHsmInternalFailureException",
        hsm.copy_backup_to_region, DestinationRegion="us-west-2", BackupId=lost_backup)
check("no half-made copy", len(west.describe_backups()["Backups"]) == copies_before)
hsm.delete_hsm(ClusterId=cluster, HsmId=lost["HsmId"])
newest_first = hsm.describe_backups(SortAscending=False)["Backups"]
check("SortAscending=False lists newest first",
      [x["CreateTimestamp"] for x in newest_first] == sorted((x["CreateTimestamp"] for x in newest_first), reverse=True))

# --- Resource policies ---------------------------------------------------------
arn = backups[0]["BackupArn"]
policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
          "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
          "Action": ["cloudhsm:CreateCluster", "cloudhsm:DescribeBackups"], "Resource": arn}]})
check("no policy yet", "Policy" not in hsm.get_resource_policy(ResourceArn=arn))
put = hsm.put_resource_policy(ResourceArn=arn, Policy=policy)
check("put-resource-policy", put["Policy"] == policy and put["ResourceArn"] == arn)
check("get-resource-policy", hsm.get_resource_policy(ResourceArn=arn)["Policy"] == policy)
refused("a policy that is not JSON", "CloudHsmInvalidRequestException",
        hsm.put_resource_policy, ResourceArn=arn, Policy="{not json")
refused("another account's backup", "CloudHsmAccessDeniedException",
        hsm.get_resource_policy, ResourceArn=arn.replace(":123456789012:", ":999999999999:"))
check("delete-resource-policy returns it", hsm.delete_resource_policy(ResourceArn=arn)["Policy"] == policy)

# --- Tags ------------------------------------------------------------------------
hsm.tag_resource(ResourceId=cluster, TagList=[{"Key": f"k{i}", "Value": str(i)} for i in range(5)])
tags = [t for p in hsm.get_paginator("list_tags").paginate(ResourceId=cluster, PaginationConfig={"PageSize": 2})
        for t in p["TagList"]]
check("list-tags pages through every tag", len(tags) == 6 and {"Key": "team", "Value": "crypto"} in tags, tags)
hsm.untag_resource(ResourceId=cluster, TagKeyList=["k0", "k1"])
check("untag-resource", len(hsm.list_tags(ResourceId=cluster)["TagList"]) == 4)
refused("over 50 tags", "CloudHsmResourceLimitExceededException", hsm.tag_resource, ResourceId=cluster,
        TagList=[{"Key": f"many{i}", "Value": "v"} for i in range(47)])
refused("untagging aws: keys", "CloudHsmTagException", hsm.untag_resource, ResourceId=cluster, TagKeyList=["aws:x"])
hsm.tag_resource(ResourceId=backup, TagList=[{"Key": "kind", "Value": "daily"}])
check("backups take tags", hsm.list_tags(ResourceId=backup)["TagList"] == [{"Key": "kind", "Value": "daily"}])
refused("tags of a missing cluster", "CloudHsmResourceNotFoundException", hsm.list_tags, ResourceId="cluster-aaaaaaaaaaa")

# --- ModifyCluster -------------------------------------------------------------------
modified = hsm.modify_cluster(ClusterId=cluster, BackupRetentionPolicy={"Type": "DAYS", "Value": "30"})["Cluster"]
check("modify-cluster sets the retention", modified["BackupRetentionPolicy"] == {"Type": "DAYS", "Value": "30"})
refused("a retention of 5 days", "CloudHsmInvalidRequestException", hsm.modify_cluster, ClusterId=cluster,
        BackupRetentionPolicy={"Type": "DAYS", "Value": "5"})

# --- A cluster from a backup --------------------------------------------------------
restored_cluster = hsm.create_cluster(HsmType="hsm2m.medium", SubnetIds=SUBNETS, SourceBackupId=backup)["Cluster"]
rc = restored_cluster["ClusterId"]
check("create-cluster from a backup names it", restored_cluster["SourceBackupId"] == backup, restored_cluster)
restored_hsm = hsm.create_hsm(ClusterId=rc, AvailabilityZone="us-east-1a")["Hsm"]
check("a cluster from an activated cluster's backup is ACTIVE", state(rc) == "ACTIVE", state(rc))
listed = hsm_cli(ca_cert, "key", "list", at=restored_hsm["EniIp"], login=ALICE)
check("its HSM holds the backup's users and keys, under the source's certificates",
      listed.returncode == 0 and "kept-in-backups" in listed.stdout, listed.stdout + listed.stderr)

# --- DeleteHsm, DeleteCluster -----------------------------------------------------------
refused("delete-cluster with HSMs", "CloudHsmInvalidRequestException", hsm.delete_cluster, ClusterId=cluster)
hsm.delete_hsm(ClusterId=cluster, HsmId=second["HsmId"])
gone = hsm.delete_cluster(ClusterId=cluster)["Cluster"]
check("delete-cluster answers DELETE_IN_PROGRESS", gone["State"] == "DELETE_IN_PROGRESS", gone["State"])
check("then DELETED", state(cluster) == "DELETED")
refused("create-hsm in a deleted cluster", "CloudHsmInvalidRequestException",
        hsm.create_hsm, ClusterId=cluster, AvailabilityZone="us-east-1a")

wire = {"json": b"application/x-amz-json-1.1", "cbor": b"application/cbor"}[PROTOCOL]
check(f"every request went as {wire.decode()}",
      {t if isinstance(t, bytes) else t.encode() for t in sent} == {wire}, sent)
print(f"{checks} checks passed over {PROTOCOL}")
