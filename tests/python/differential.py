"""Differential verification: systematic mutants of valid Sigstore bundles and trusted roots,
each verified with sigstore-python's API in this one process.

Usage: differential.py --bases DIR --out DIR

DIR (bases) holds one sub-directory per base case with a `case.json`:
  {"bundle": "bundle.json", "artifact": "artifact", "trusted_root": "trusted_root.json",
   "identity": "alice@example.com", "issuer": "https://issuer", "key": null | "key.pub"}
(paths relative to the case directory). The output directory receives the mutant files and
`mutants.jsonl`, one line per mutant:
  {"name", "base", "bundle", "trusted_root", "artifact", "identity", "issuer", "key",
   "security": bool, "python": "accept" | "reject", "python_message"}
`security` says whether the mutation changes something a verifier must check (signed bytes,
proofs, keys, signatures, bodies, ids, indexes, times), as opposed to a re-encoding or the removal
of optional material; it is the verdict used where sigstore-python cannot serve as the oracle
(key-based bundles). The unmodified base is the mutant `<base>/original`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import dataclasses
import datetime
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Leaves of the bundle that carry base64 bytes (by key name), and int64 leaves (JSON strings).
B64_KEYS = {
    "rawBytes",
    "keyId",
    "signedEntryTimestamp",
    "rootHash",
    "canonicalizedBody",
    "signedTimestamp",
    "digest",
    "signature",
    "payload",
    "sig",
}
B64_LISTS = {"hashes"}
INT_KEYS = {"logIndex", "integratedTime", "treeSize"}
# Offsets (fractions of the length) where DER structures get a bit flipped.
DER_FLIP_AT = [0.0, 0.03, 0.1, 0.2, 0.3, 0.45, 0.55, 0.7, 0.85, 0.95, 1.0]

Path_ = tuple  # a JSON path: keys and indexes


# ---------------------------------------------------------------------------------------------
# JSON paths


def fmt_path(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out.removeprefix("verificationMaterial.") or "(root)"


def get(doc: Any, path: Path_) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def put(doc: Any, path: Path_, value: Any) -> None:
    get(doc, path[:-1])[path[-1]] = value


def remove(doc: Any, path: Path_) -> None:
    del get(doc, path[:-1])[path[-1]]


def walk(doc: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every node below the root, parents before children."""
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return
    for k, v in items:
        yield path + (k,), v
        yield from walk(v, path + (k,))


def find_path(doc: Any, wanted: str) -> Path_ | None:
    for path, _ in walk(doc):
        if fmt_path(path) == wanted:
            return path
    return None


def is_b64(path: Path_) -> bool:
    last = path[-1]
    if isinstance(last, int):
        return len(path) > 1 and path[-2] in B64_LISTS
    return last in B64_KEYS


# ---------------------------------------------------------------------------------------------
# Byte-level edits


def b64d(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None)


def b64e(b: bytes) -> str:
    return base64.b64encode(b).decode()


def flip(b: bytes, at: float = 0.5, bit: int = 0) -> bytes:
    if not b:
        return b"\x01"
    i = min(len(b) - 1, int(at * len(b)))
    out = bytearray(b)
    out[i] ^= 1 << bit
    return bytes(out)


def flip_str(s: str) -> str:
    if not s:
        return "x"
    return s[:-1] + chr(ord(s[-1]) ^ 1)


def fresh_spki() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fresh_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Mutants


@dataclass
class Mutant:
    name: str
    bundle: Any  # JSON value (or raw text, for syntax-level mutants)
    root: Any = None  # a mutated trusted root, or None for the base's
    artifact: bytes | None = None  # a mutated artifact, or None for the base's
    identity: str | None = None
    issuer: str | None = None
    key: bytes | None = None  # a replacement public key (PEM) for key-based bases
    security: bool = True


@dataclass
class Base:
    name: str
    dir: Path
    bundle: Any
    bundle_text: str
    artifact: bytes
    root: Any
    root_path: Path
    artifact_path: Path
    identity: str | None
    issuer: str | None
    key_path: Path | None
    mutants: list[Mutant] = field(default_factory=list)

    def add(self, what: str, op: str, bundle: Any, security: bool | None = None, **kw: Any) -> None:
        if security is None:
            security = must_reject(self, what, op)
        self.mutants.append(Mutant(f"{self.name}/{what}/{op}", bundle, security=security, **kw))

    def has_set(self) -> bool:
        entries = self.bundle.get("verificationMaterial", {}).get("tlogEntries", [])
        return bool(entries and entries[0].get("inclusionPromise"))

    def edited(self, path: Path_, fn: Callable[[Any], Any]) -> Any:
        doc = copy.deepcopy(self.bundle)
        put(doc, path, fn(get(doc, path)))
        return doc


def signing_time(base: Base) -> datetime.datetime:
    """A time the signature was made at: the log's integrated time, else a TSA's genTime."""
    for e in base.bundle.get("verificationMaterial", {}).get("tlogEntries", []):
        t = int(e.get("integratedTime") or 0)
        if t > 0:
            return datetime.datetime.fromtimestamp(t, tz=datetime.timezone.utc)
    from rfc3161_client import decode_timestamp_response

    tvd = base.bundle["verificationMaterial"].get("timestampVerificationData", {})
    for ts in tvd.get("rfc3161Timestamps", []):
        return decode_timestamp_response(b64d(ts["signedTimestamp"])).tst_info.gen_time
    raise ValueError(f"{base.name}: no signing time in the bundle")


def value_mutants(base: Base, path: Path_, value: Any, others: list[Base]) -> None:
    what = fmt_path(path)
    # proto3 JSON omits default values (0, "", []): dropping one re-encodes the same bundle.
    default = value in ("0", 0, "", []) and not isinstance(value, bool)
    deleted = copy.deepcopy(base.bundle)
    remove(deleted, path)
    base.add(what, "reencode-omitted-default" if default else "delete", deleted)
    base.add(what, "reencode-null-default" if default else "null", base.edited(path, lambda _: None))
    if isinstance(value, str):
        base.add(what, "empty", base.edited(path, lambda _: ""))
        if is_b64(path):
            raw = b64d(value)
            base.add(what, "bitflip", base.edited(path, lambda _: b64e(flip(raw))))
            if what.endswith(("signature", ".sig", "signedEntryTimestamp", "keyId", "rootHash")):
                base.add(what, "bitflip-first", base.edited(path, lambda _: b64e(flip(raw, 0.0, 7))))
                base.add(what, "bitflip-last", base.edited(path, lambda _: b64e(flip(raw, 1.0))))
            base.add(what, "truncated", base.edited(path, lambda _: b64e(raw[:-1])))
            base.add(what, "extended", base.edited(path, lambda _: b64e(raw + b"\x00")))
            urlsafe = base64.urlsafe_b64encode(raw).decode()
            if urlsafe != value:
                base.add(what, "reencode-urlsafe", base.edited(path, lambda _: urlsafe), security=False)
            if value.endswith("="):
                base.add(what, "reencode-unpadded", base.edited(path, lambda _: value.rstrip("=")), security=False)
            base.add(what, "not-base64", base.edited(path, lambda _: value[:-2] + "!" + value[-1:]))
        elif path[-1] in INT_KEYS:
            n = int(value)
            base.add(what, "plus1", base.edited(path, lambda _: str(n + 1)))
            base.add(what, "minus1", base.edited(path, lambda _: str(n - 1)))
            base.add(what, "negative", base.edited(path, lambda _: str(-n - 1)))
            base.add(what, "reencode-number", base.edited(path, lambda _: n), security=False)
            base.add(what, "not-a-number", base.edited(path, lambda _: value + "x"))
        else:
            base.add(what, "bitflip", base.edited(path, lambda _: flip_str(value)))
            base.add(what, "truncated", base.edited(path, lambda _: value[:-1]))
    elif isinstance(value, int) and not isinstance(value, bool):
        base.add(what, "plus1", base.edited(path, lambda _: value + 1))
        base.add(what, "minus1", base.edited(path, lambda _: value - 1))
        base.add(what, "reencode-string", base.edited(path, lambda _: str(value)), security=False)
    elif isinstance(value, list):
        if value:
            base.add(what, "empty", base.edited(path, lambda _: []))
            base.add(what, "duplicate-first", base.edited(path, lambda v: v + v[:1]))
            if len(value) > 1:
                base.add(what, "reversed", base.edited(path, lambda v: list(reversed(v))))
                base.add(what, "drop-last", base.edited(path, lambda v: v[:-1]))
    elif isinstance(value, dict):
        base.add(what, "empty", base.edited(path, lambda _: {}))
        base.add(what, "unknown-field", base.edited(path, lambda v: {**v, "sigilUnknownField": "x"}))
    # The same field from other bases (e.g. a proof from a different position of the same log).
    swapped = 0
    for other in others:
        o = find_path(other.bundle, what)
        if o is None:
            continue
        ov = get(other.bundle, o)
        if ov == value or type(ov) is not type(value):
            continue
        base.add(what, f"swap-{other.name}", base.edited(path, lambda _: copy.deepcopy(ov)))
        swapped += 1
        if swapped == 2:
            break


DELETIONS = ("delete", "null", "empty")


def must_reject(base: Base, what: str, op: str) -> bool:
    """Whether a verifier must reject this mutation whatever it is verified with: it changes
    signed bytes, proofs, keys, signatures, bodies, ids, indexes or a time a verdict rests on.
    Re-encodings, unknown fields, the advisory key hint and material whose removal leaves a
    complete bundle are not; sigstore-python judges those where it can."""
    if op.startswith("reencode-") or op in ("unknown-field", "foreign-added", "no-final-newline"):
        return False
    if what.startswith("publicKey") or what.startswith("mediaType") and not op.startswith("v0.1-proof"):
        return False
    if op == "name-changed":  # a note signature's name is not signed; the key hint picks the key
        return False
    if what in ("tlogEntries", "timestampVerificationData.rfc3161Timestamps", "x509CertificateChain.certificates") and op == "duplicate-first":
        return False
    if what.startswith("timestampVerificationData"):
        # With a signed entry timestamp the log gives the time; the TSA's is then a second source.
        return not base.has_set()
    if what.endswith("integratedTime"):
        return base.has_set()  # without a SET nothing binds it and nothing may use it
    if what.endswith("inclusionPromise") and op in DELETIONS:
        return False
    if what in ("messageSignature.messageDigest",) and op in DELETIONS:
        return False
    if what.startswith("dsseEnvelope.signatures[") and what.endswith(".keyid"):
        return False
    return True


def body_mutants(base: Base, path: Path_, value: str) -> None:
    """Each leaf of the decoded canonicalizedBody: changed and deleted; nested base64 flipped."""
    what = fmt_path(path)
    try:
        body = json.loads(b64d(value))
    except (ValueError, binascii.Error):
        return

    def encode(doc: Any) -> str:
        return b64e(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())

    for bpath, bval in walk(body):
        inner = f"{what}{{{fmt_path(bpath)}}}"
        d = copy.deepcopy(body)
        remove(d, bpath)
        base.add(inner, "delete", base.edited(path, lambda _, d=d: encode(d)))
        if isinstance(bval, str):
            changed: list[tuple[str, str]] = [("changed", flip_str(bval))]
            try:
                raw = b64d(bval)
                if len(raw) > 4 and b64e(raw) == bval:
                    changed.append(("bitflip", b64e(flip(raw))))
                    if raw.startswith(b"-----BEGIN"):
                        pem = raw.decode()
                        lines = pem.splitlines()
                        der = b64d("".join(lines[1:-1]))
                        flipped = "\n".join([lines[0]] + [b64e(flip(der, 0.6))] + [lines[-1]]) + "\n"
                        changed.append(("pem-der-bitflip", b64e(flipped.encode())))
            except (ValueError, binascii.Error):
                pass
            if all(c in "0123456789abcdef" for c in bval) and len(bval) >= 32:
                changed.append(("hex-bitflip", bval[:-1] + ("0" if bval[-1] != "0" else "1")))
            for op, nv in changed:
                d = copy.deepcopy(body)
                put(d, bpath, nv)
                base.add(inner, op, base.edited(path, lambda _, d=d: encode(d)))
    # Semantically equal JSON with other bytes: the leaf hash changes, so the proof must fail.
    spaced = b64e(json.dumps(body, indent=1).encode())
    base.add(what, "reserialized", base.edited(path, lambda _: spaced))


def checkpoint_mutants(base: Base, path: Path_, text: str) -> None:
    """The C2SP signed note: origin, size, root hash, extension and signature lines."""
    what = fmt_path(path)
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        return
    lines = body.split("\n")
    sig_lines = [s for s in sigs.split("\n") if s]

    def note(ls: list[str], ss: list[str]) -> str:
        return "\n".join(ls) + "\n\n" + "".join(s + "\n" for s in ss)

    def edit_line(i: int, fn: Callable[[str], str]) -> str:
        ls = list(lines)
        ls[i] = fn(ls[i])
        return note(ls, sig_lines)

    base.add(what + "{origin}", "changed", base.edited(path, lambda _: edit_line(0, lambda s: s + "x")))
    if len(lines) > 1 and lines[1].isdigit():
        n = int(lines[1])
        base.add(what + "{size}", "plus1", base.edited(path, lambda _: edit_line(1, lambda _: str(n + 1))))
        base.add(what + "{size}", "minus1", base.edited(path, lambda _: edit_line(1, lambda _: str(n - 1))))
    if len(lines) > 2:
        root = b64d(lines[2])
        base.add(what + "{root}", "bitflip", base.edited(path, lambda _: edit_line(2, lambda _: b64e(flip(root)))))
    base.add(what + "{extension}", "added", base.edited(path, lambda _: note(lines + ["extra"], sig_lines)))
    base.add(what + "{lines}", "dropped-last", base.edited(path, lambda _: note(lines[:-1], sig_lines)))
    for i, s in enumerate(sig_lines):
        parts = s.split(" ")
        if len(parts) != 3:
            continue
        dash, name, sig_b64 = parts
        sig = b64d(sig_b64)
        tag = f"{what}{{signature[{i}]}}"

        def with_sig(new: str | None, i: int = i) -> str:
            ss = list(sig_lines)
            if new is None:
                del ss[i]
            else:
                ss[i] = new
            return note(lines, ss)

        base.add(tag, "name-changed", base.edited(path, lambda _: with_sig(f"{dash} {name}x {sig_b64}")))
        base.add(tag, "keyhint-bitflip", base.edited(path, lambda _: with_sig(f"{dash} {name} {b64e(flip(sig, 0.0))}")))
        base.add(tag, "bitflip", base.edited(path, lambda _: with_sig(f"{dash} {name} {b64e(flip(sig, 1.0))}")))
        base.add(tag, "truncated", base.edited(path, lambda _: with_sig(f"{dash} {name} {b64e(sig[:-1])}")))
        base.add(tag, "delete", base.edited(path, lambda _: with_sig(None)))
    foreign_sig = b64e(bytes([1, 2, 3, 4]) + bytes(64))
    foreign = f"\u2014 other.example {foreign_sig}"
    base.add(what + "{signature}", "foreign-added", base.edited(path, lambda _: note(lines, sig_lines + [foreign])), security=False)
    base.add(what + "{signature}", "foreign-only", base.edited(path, lambda _: note(lines, [foreign])))
    base.add(what, "no-final-newline", base.edited(path, lambda _: text.rstrip("\n")), security=False)


def der_mutants(base: Base, path: Path_, value: str, label: str) -> None:
    """Bit flips spread over a DER structure, truncation and trailing bytes."""
    what = f"{fmt_path(path)}{{{label}}}"
    der = b64d(value)
    seen = set()
    for at in DER_FLIP_AT:
        i = min(len(der) - 1, int(at * len(der)))
        if i in seen:
            continue
        seen.add(i)
        base.add(what, f"bitflip@{i}", base.edited(path, lambda _, i=i: b64e(flip(der, i / len(der) + 1e-9))))
    base.add(what, "truncated-half", base.edited(path, lambda _: b64e(der[: len(der) // 2])))
    base.add(what, "trailing-byte", base.edited(path, lambda _: b64e(der + b"\x00")))


def bundle_mutants(base: Base, others: list[Base]) -> None:
    base.mutants.append(Mutant(f"{base.name}/original", base.bundle, security=False))
    for path, value in list(walk(base.bundle)):
        what = fmt_path(path)
        value_mutants(base, path, value, others)
        if what.endswith("canonicalizedBody") and isinstance(value, str):
            body_mutants(base, path, value)
        if what.endswith("checkpoint.envelope") and isinstance(value, str):
            checkpoint_mutants(base, path, value)
        if path[-1] == "rawBytes" and ("certificate" in what or "certificates" in what):
            der_mutants(base, path, value, "der")
        if path[-1] == "signedTimestamp":
            der_mutants(base, path, value, "der")
    vm = base.bundle.get("verificationMaterial", {})
    entries = vm.get("tlogEntries", [])
    if entries and "inclusionProof" in entries[0]:
        # The case of issue 14: a proof from elsewhere without its checkpoint, next to a valid SET.
        for other in others:
            oe = other.bundle.get("verificationMaterial", {}).get("tlogEntries", [])
            if not oe or "inclusionProof" not in oe[0]:
                continue
            if oe[0].get("logId") != entries[0].get("logId"):
                continue
            proof = copy.deepcopy(oe[0]["inclusionProof"])
            proof.pop("checkpoint", None)
            doc = copy.deepcopy(base.bundle)
            doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] = proof
            base.add("tlogEntries[0].inclusionProof", f"from-{other.name}-without-checkpoint", doc)
        doc = copy.deepcopy(base.bundle)
        doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].pop("checkpoint", None)
        doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"] = []
        base.add("tlogEntries[0].inclusionProof", "no-checkpoint-no-hashes", doc)
    legacy_mutants(base, others)
    # Another base's whole (valid) bundle, for this base's artifact and identity.
    for other in others[:2]:
        base.add("(document)", f"swap-{other.name}", copy.deepcopy(other.bundle))
    # Syntax-level: not JSON at all, and JSON that is not an object.
    base.add("(document)", "truncated", base.bundle_text[: len(base.bundle_text) // 2])
    base.add("(document)", "array", [base.bundle])


def legacy_mutants(base: Base, others: list[Base]) -> None:
    """The older bundle formats: the leaf in `x509CertificateChain` (v0.2, v0.1), each mutated."""
    vm = base.bundle.get("verificationMaterial", {})
    leaf = vm.get("certificate")
    if not leaf:
        return
    legacy = copy.deepcopy(base.bundle)
    legacy["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2"
    lvm = legacy["verificationMaterial"]
    del lvm["certificate"]
    lvm["x509CertificateChain"] = {"certificates": [copy.deepcopy(leaf)]}
    base.add("certificate", "reencode-v0.2-chain", legacy, security=False)
    sub = dataclasses.replace(base, bundle=legacy)  # shares base.mutants
    chain_path: Path_ = ("verificationMaterial", "x509CertificateChain")
    for path, value in list(walk(legacy)):
        if path[: len(chain_path)] == chain_path:
            value_mutants(sub, path, value, [])
    ca_certs = [c for ca in base.root.get("certificateAuthorities", []) for c in ca["certChain"]["certificates"]]
    with_ca = copy.deepcopy(legacy)
    with_ca["verificationMaterial"]["x509CertificateChain"]["certificates"] += copy.deepcopy(ca_certs)
    base.add("x509CertificateChain.certificates", "with-ca-certs", with_ca, security=False)
    for other in others:
        ol = other.bundle.get("verificationMaterial", {}).get("certificate")
        if ol and ol != leaf:
            d = copy.deepcopy(legacy)
            d["verificationMaterial"]["x509CertificateChain"]["certificates"].insert(0, copy.deepcopy(ol))
            base.add("x509CertificateChain.certificates", f"leaf-of-{other.name}-first", d)
            break
    v01 = copy.deepcopy(legacy)
    v01["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
    base.add("mediaType", "reencode-v0.1-chain", v01, security=False)
    entries = v01["verificationMaterial"].get("tlogEntries", [])
    if entries and "inclusionProof" in entries[0]:
        d = copy.deepcopy(v01)
        d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].pop("checkpoint", None)
        base.add("mediaType", "v0.1-proof-without-checkpoint", d)
        for other in others:
            oe = other.bundle.get("verificationMaterial", {}).get("tlogEntries", [])
            if oe and "inclusionProof" in oe[0] and oe[0].get("logId") == entries[0].get("logId"):
                d = copy.deepcopy(v01)
                proof = copy.deepcopy(oe[0]["inclusionProof"])
                proof.pop("checkpoint", None)
                d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] = proof
                base.add("mediaType", f"v0.1-proof-of-{other.name}-without-checkpoint", d)
                break


def policy_mutants(base: Base) -> None:
    if base.key_path is not None:
        base.add("(policy)", "other-key", base.bundle, key=fresh_pem())
    else:
        base.add("(policy)", "other-identity", base.bundle, identity="mallory@example.com", issuer=base.issuer)
        base.add("(policy)", "other-issuer", base.bundle, identity=base.identity, issuer=base.issuer + "x")
    art = base.artifact
    base.add("(artifact)", "bitflip", base.bundle, artifact=flip(art))
    base.add("(artifact)", "truncated", base.bundle, artifact=art[:-1])
    base.add("(artifact)", "empty", base.bundle, artifact=b"")
    base.add("(artifact)", "appended", base.bundle, artifact=art + b"\n")


def root_mutants(base: Base) -> None:
    root = base.root
    keyless = base.key_path is None
    when = signing_time(base)
    hour = datetime.timedelta(hours=1)

    def add(what: str, op: str, doc: Any, security: bool = True) -> None:
        base.mutants.append(Mutant(f"{base.name}/trustedRoot.{what}/{op}", base.bundle, root=doc, security=security))

    def each(key: str) -> list[Any]:
        return root.get(key, []) or []

    def edit(fn: Callable[[Any], None]) -> Any:
        doc = copy.deepcopy(root)
        fn(doc)
        return doc

    def set_valid(doc: Any, key: str, start: datetime.datetime | None, end: datetime.datetime | None) -> None:
        for inst in doc.get(key, []):
            holder = inst["publicKey"] if "publicKey" in inst else inst
            vf = holder.setdefault("validFor", {})
            if start is not None:
                vf["start"] = rfc3339(start)
            if end is not None:
                vf["end"] = rfc3339(end)

    entry_key_id = None
    entries = base.bundle.get("verificationMaterial", {}).get("tlogEntries", [])
    if entries:
        entry_key_id = entries[0].get("logId", {}).get("keyId")

    add("certificateAuthorities", "validFor-end-before-signing", edit(lambda d: set_valid(d, "certificateAuthorities", when - 10 * hour, when - hour)), keyless)
    add("certificateAuthorities", "validFor-start-after-signing", edit(lambda d: set_valid(d, "certificateAuthorities", when + hour, None)), keyless)
    add("certificateAuthorities", "removed", edit(lambda d: d.__setitem__("certificateAuthorities", [])), keyless)
    if each("certificateAuthorities"):
        def other_ca(d: Any) -> None:
            for ca in d["certificateAuthorities"]:
                certs = ca["certChain"]["certificates"]
                certs[-1]["rawBytes"] = b64e(flip(b64d(certs[-1]["rawBytes"]), 0.85))
        # The flip lands in the root's self-signature: a trust anchor is trusted for being in
        # the trusted root, and path validation (sigstore-python's too) does not check that
        # signature. sigstore-python judges it where it can verify the base.
        add("certificateAuthorities", "root-cert-bitflip", edit(other_ca), False)
    for i, tl in enumerate(each("tlogs")):
        tag = f"tlogs[{i}]"
        used = tl.get("logId", {}).get("keyId") == entry_key_id
        rest = [t for j, t in enumerate(each("tlogs")) if j != i]
        if rest:
            add(tag, "key-of-other-log", edit(lambda d, i=i, o=rest[0]: d["tlogs"][i]["publicKey"].__setitem__("rawBytes", o["publicKey"]["rawBytes"])), used)
        add(tag, "fresh-key", edit(lambda d, i=i: d["tlogs"][i]["publicKey"].__setitem__("rawBytes", b64e(fresh_spki()))), used)
        add(tag, "removed", edit(lambda d, i=i: d["tlogs"].pop(i)), used)
        add(tag, "validFor-start-after-signing", edit(lambda d, i=i: d["tlogs"][i]["publicKey"].setdefault("validFor", {}).__setitem__("start", rfc3339(when + hour))), used)
        add(tag, "validFor-end-before-signing", edit(lambda d, i=i: d["tlogs"][i]["publicKey"].setdefault("validFor", {}).update(start=rfc3339(when - 10 * hour), end=rfc3339(when - hour))), used)
        add(tag, "logId-bitflip", edit(lambda d, i=i: d["tlogs"][i]["logId"].__setitem__("keyId", b64e(flip(b64d(d["tlogs"][i]["logId"]["keyId"]))))), used)
    add("tlogs", "removed", edit(lambda d: d.__setitem__("tlogs", [])))
    add("ctlogs", "removed", edit(lambda d: d.__setitem__("ctlogs", [])), keyless)
    for i, _ in enumerate(each("ctlogs")):
        add(f"ctlogs[{i}]", "fresh-key", edit(lambda d, i=i: d["ctlogs"][i]["publicKey"].__setitem__("rawBytes", b64e(fresh_spki()))), keyless)
        add(f"ctlogs[{i}]", "validFor-start-after-signing", edit(lambda d, i=i: d["ctlogs"][i]["publicKey"].setdefault("validFor", {}).__setitem__("start", rfc3339(when + hour))), keyless)
    has_ts = bool(base.bundle.get("verificationMaterial", {}).get("timestampVerificationData", {}).get("rfc3161Timestamps"))
    add("timestampAuthorities", "removed", edit(lambda d: d.__setitem__("timestampAuthorities", [])), has_ts)
    if each("timestampAuthorities"):
        # A timestamp that no longer verifies matters where it is the only source of time.
        only_time = has_ts and not base.has_set()
        add("timestampAuthorities", "validFor-start-after-signing", edit(lambda d: set_valid(d, "timestampAuthorities", when + hour, None)), only_time)
        add("timestampAuthorities", "validFor-end-before-signing", edit(lambda d: set_valid(d, "timestampAuthorities", when - 10 * hour, when - hour)), only_time)

        def tsa_leaf_flip(d: Any) -> None:
            for ta in d["timestampAuthorities"]:
                c = ta["certChain"]["certificates"][0]
                c["rawBytes"] = b64e(flip(b64d(c["rawBytes"]), 0.85))
        add("timestampAuthorities", "leaf-cert-bitflip", edit(tsa_leaf_flip), only_time)

        def tsa_chain_root_only(d: Any) -> None:
            for ta in d["timestampAuthorities"]:
                ta["certChain"]["certificates"] = ta["certChain"]["certificates"][-1:]
        add("timestampAuthorities", "chain-root-only", edit(tsa_chain_root_only), only_time)


# ---------------------------------------------------------------------------------------------
# sigstore-python as the oracle


class Oracle:
    def __init__(self) -> None:
        from sigstore import _cli  # `sigstore verify identity`'s own dispatch (artifact or DSSE)
        from sigstore._utils import sha256_digest
        from sigstore.models import Bundle, TrustedRoot
        from sigstore.verify import Verifier, policy

        self._cli, self._digest = _cli, sha256_digest
        self._Bundle, self._TrustedRoot = Bundle, TrustedRoot
        self._Verifier, self._policy = Verifier, policy
        self._verifiers: dict[str, Any] = {}

    def verify(self, bundle: bytes, root: Path, artifact: bytes, identity: str | None, issuer: str | None) -> tuple[bool, str]:
        try:
            if identity is None:
                # Key-based bundles: sigstore-python 4.5.1 verifies keyless bundles only.
                self._Bundle.from_json(bundle)
                return False, "key-based bundles are not supported by sigstore-python"
            key = str(root)
            if key not in self._verifiers:
                self._verifiers[key] = self._Verifier(trusted_root=self._TrustedRoot.from_file(key))
            verifier = self._verifiers[key]
            b = self._Bundle.from_json(bundle)
            pol = self._policy.Identity(identity=identity, issuer=issuer)
            self._cli._verify_common(verifier, self._digest(artifact), b, pol)
            return True, ""
        except Exception as e:  # every failure is a rejection; keep what it said
            return False, " ".join(f"{type(e).__name__}: {e}".split())[:400]


# ---------------------------------------------------------------------------------------------


def load_base(case_dir: Path) -> Base:
    case = json.loads((case_dir / "case.json").read_text())
    bundle_text = (case_dir / case["bundle"]).read_text()
    root_path = (case_dir / case["trusted_root"]).resolve()
    artifact_path = (case_dir / case["artifact"]).resolve()
    return Base(
        name=case_dir.name,
        dir=case_dir,
        bundle=json.loads(bundle_text),
        bundle_text=bundle_text,
        artifact=artifact_path.read_bytes(),
        root=json.loads(root_path.read_text()),
        root_path=root_path,
        artifact_path=artifact_path,
        identity=case.get("identity"),
        issuer=case.get("issuer"),
        key_path=(case_dir / case["key"]).resolve() if case.get("key") else None,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bases", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", help="only mutants whose name contains this")
    args = ap.parse_args()
    # sigstore-python logs every rejected key or timestamp; the JSONL keeps what matters.
    logging.disable(logging.CRITICAL)

    bases = [load_base(d) for d in sorted(args.bases.iterdir()) if (d / "case.json").is_file()]
    if not bases:
        print(f"no base cases (*/case.json) in {args.bases}", file=sys.stderr)
        return 2
    for base in bases:
        others = [o for o in bases if o is not base]
        bundle_mutants(base, others)
        policy_mutants(base)
        root_mutants(base)

    out = args.out
    for sub in ("bundles", "roots", "artifacts", "keys"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    oracle = Oracle()
    started = time.monotonic()
    names: set[str] = set()
    counts: dict[str, list[int]] = {}
    with (out / "mutants.jsonl").open("w") as jsonl:
        n = 0
        for base in bases:
            for m in base.mutants:
                if args.only and args.only not in m.name:
                    continue
                name = m.name
                k = 2
                while name in names:
                    name, k = f"{m.name}#{k}", k + 1
                names.add(name)
                text = m.bundle if isinstance(m.bundle, str) else json.dumps(m.bundle, indent=1)
                bundle_path = out / "bundles" / f"{n}.json"
                bundle_path.write_text(text)
                root_path = base.root_path
                if m.root is not None:
                    root_path = out / "roots" / f"{n}.json"
                    root_path.write_text(json.dumps(m.root, indent=1))
                artifact_path = base.artifact_path
                artifact = base.artifact
                if m.artifact is not None:
                    artifact_path = out / "artifacts" / str(n)
                    artifact_path.write_bytes(m.artifact)
                    artifact = m.artifact
                key_path = base.key_path
                if m.key is not None:
                    key_path = out / "keys" / f"{n}.pub"
                    key_path.write_bytes(m.key)
                identity = m.identity if m.identity is not None else base.identity
                issuer = m.issuer if m.issuer is not None else base.issuer
                ok, msg = oracle.verify(text.encode(), root_path, artifact, identity, issuer)
                c = counts.setdefault(base.name, [0, 0])
                c[0] += 1
                c[1] += 0 if ok else 1
                jsonl.write(
                    json.dumps(
                        {
                            "name": name,
                            "base": base.name,
                            "bundle": str(bundle_path),
                            "trusted_root": str(root_path),
                            "artifact": str(artifact_path),
                            "identity": identity,
                            "issuer": issuer,
                            "key": str(key_path) if key_path else None,
                            "security": m.security,
                            "python": "accept" if ok else "reject",
                            "python_message": msg,
                        }
                    )
                    + "\n"
                )
                n += 1
    for name, (total, rejected) in counts.items():
        print(f"{name}: {total} mutants, {rejected} rejected by sigstore-python", file=sys.stderr)
    print(f"{n} mutants verified with sigstore-python in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
