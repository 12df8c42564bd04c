"""python-tuf's ngclient (the reference TUF client) as the judge of Sigil's TUF repository.

    tuf_client.py refresh --metadata-dir D --url URL [--root ROOT] [--download-dir T] [--target NAME]...

Bootstraps from ROOT (or from D's trusted root.json when ROOT is not given), refreshes, downloads
each target into T and prints one JSON object: the trusted versions of every role and each
target's SHA-256. On failure it prints {"error": <exception class>, "message": ...} and exits 1.

    tuf_client.py tamper-timestamp --repo R --key PEM (--expire | --snapshot-version N)

Re-signs R's timestamp.json with the timestamp key, one version up, either already expired or
naming snapshot version N (a rollback when N is older than the trusted one): the repository
misbehaving with its own key, which a client must still refuse.
"""

import argparse
import datetime
import hashlib
import json
import pathlib
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Signature, Timestamp
from tuf.ngclient import Updater


def refresh(args):
    meta_dir = pathlib.Path(args.metadata_dir)
    meta_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = pathlib.Path(args.root).read_bytes() if args.root else None
    if bootstrap is None and not (meta_dir / "root.json").exists():
        raise SystemExit("no --root and no trusted root.json in the metadata dir")
    updater = Updater(
        metadata_dir=str(meta_dir),
        metadata_base_url=args.url,
        target_base_url=args.url.rstrip("/") + "/targets/",
        target_dir=args.download_dir,
        bootstrap=bootstrap,
    )
    updater.refresh()
    out = {}
    for role in ("root", "timestamp", "snapshot", "targets"):
        md = Metadata.from_file(str(meta_dir / f"{role}.json"))
        out[f"{role}_version"] = md.signed.version
    targets = {}
    for name in args.target or []:
        info = updater.get_targetinfo(name)
        if info is None:
            raise LookupError(f"target {name} is not in the repository")
        path = updater.download_target(info)
        targets[name] = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    out["targets"] = targets
    print(json.dumps(out))


def tamper_timestamp(args):
    repo = pathlib.Path(args.repo)
    key = load_pem_private_key(pathlib.Path(args.key).read_bytes(), password=None)
    signer = CryptoSigner(key)
    md = Metadata[Timestamp].from_file(str(repo / "timestamp.json"))
    md.signed.version += 1
    if args.expire:
        md.signed.expires = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0
        ) - datetime.timedelta(hours=1)
    if args.snapshot_version is not None:
        raw = (repo / f"{args.snapshot_version}.snapshot.json").read_bytes()
        md.signed.snapshot_meta = MetaFile(
            version=args.snapshot_version,
            length=len(raw),
            hashes={"sha256": hashlib.sha256(raw).hexdigest()},
        )
    md.signatures.clear()
    md.sign(signer)
    # Under the key ID the root lists (securesystemslib derives its own).
    roots = sorted(repo.glob("*.root.json"), key=lambda p: int(p.name.split(".")[0]))
    root = Metadata[Root].from_file(str(roots[-1]))
    keyid = root.signed.roles["timestamp"].keyids[0]
    (_, sig), = md.signatures.items()
    md.signatures.clear()
    md.signatures[keyid] = Signature(keyid, sig.signature)
    md.to_file(str(repo / "timestamp.json"))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("refresh")
    r.add_argument("--metadata-dir", required=True)
    r.add_argument("--url", required=True)
    r.add_argument("--root")
    r.add_argument("--download-dir")
    r.add_argument("--target", action="append")
    t = sub.add_parser("tamper-timestamp")
    t.add_argument("--repo", required=True)
    t.add_argument("--key", required=True)
    t.add_argument("--expire", action="store_true")
    t.add_argument("--snapshot-version", type=int)
    args = p.parse_args()
    try:
        if args.cmd == "refresh":
            refresh(args)
        else:
            tamper_timestamp(args)
    except Exception as e:  # the verdict, for the test to assert on
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        sys.exit(1)


if __name__ == "__main__":
    main()
