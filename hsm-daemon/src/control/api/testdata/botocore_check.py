"""Drives a server running the fake handler (tests::serve_the_fake_handler)
with real botocore, in both protocols. Run with /work/venv/bin/python (or
any Python with boto3); argument: the endpoint URL.

botocore picks AWS JSON 1.1 for cloudhsmv2 by default; RPC v2 CBOR is
forced with a copy of the model that lists only that protocol
(AWS_DATA_PATH), in a child process.
"""
import gzip, json, os, subprocess, sys, tempfile

import boto3, botocore

endpoint = sys.argv[1]
secret = os.environ.get("HSM_API_MANUAL_SECRET", "y")


def client():
    return boto3.client("cloudhsmv2", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key=secret)


def run():
    c = client()
    sent = []
    c.meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    clusters = c.describe_clusters(MaxResults=5)["Clusters"]
    print("protocol path:", sent[-1])
    print("DescribeClusters:", clusters[0]["ClusterId"], repr(clusters[0]["CreateTimestamp"]),
          repr(clusters[0]["HsmTypeRollbackExpiration"]), clusters[0]["State"])
    c.tag_resource(ResourceId="cluster-igklspoyj5v", TagList=[{"Key": "k", "Value": "ünï"}])
    print("TagResource: ok")
    # Client-side validation off, so that the server's checks answer.
    raw = boto3.client("cloudhsmv2", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key=secret,
                       config=botocore.config.Config(parameter_validation=False))
    for call in (lambda: raw.delete_cluster(ClusterId="abc"),
                 lambda: raw.delete_backup(BackupId="backup-igklspoyj5v")):
        try:
            call()
        except botocore.exceptions.ClientError as error:
            print("error:", error.response["ResponseMetadata"]["HTTPStatusCode"],
                  error.response["Error"]["Code"], "-", error.response["Error"]["Message"])


if os.environ.get("CHECK_CHILD"):
    run()
    sys.exit(0)

print("== AWS JSON 1.1 (botocore's default)")
run()
source = os.path.join(os.path.dirname(botocore.__file__), "data/cloudhsmv2/2017-04-28/service-2.json.gz")
model = json.load(gzip.open(source))
model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
with tempfile.TemporaryDirectory() as data:
    os.makedirs(os.path.join(data, "cloudhsmv2/2017-04-28"))
    with open(os.path.join(data, "cloudhsmv2/2017-04-28/service-2.json"), "w") as out:
        json.dump(model, out)
    print("== Smithy RPC v2 CBOR (forced)", flush=True)
    subprocess.run([sys.executable, __file__, endpoint],
                   env={**os.environ, "AWS_DATA_PATH": data, "CHECK_CHILD": "1"}, check=True)
