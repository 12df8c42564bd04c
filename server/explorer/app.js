// Sigil's log explorer: search the deployment's logs (Rekor v1, Rekor v2 tiles, CT) and show
// each entry with its inclusion proof checked here, with WebCrypto, against the log's current
// checkpoint, whose signature is checked against the trusted root's key. No framework, no
// external request: everything comes from the server that served this file.

'use strict';

const $ = (sel) => document.querySelector(sel);
const main = $('#main');
const te = new TextEncoder();
const td = new TextDecoder();

// ---------- bytes ----------

const b64d = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const b64e = (u8) => btoa(String.fromCharCode(...u8));
const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array((s.match(/../g) || []).map((h) => parseInt(h, 16)));
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
const sha256 = async (u8) => new Uint8Array(await crypto.subtle.digest('SHA-256', u8));

// ---------- HTML ----------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') el.textContent = v; else el.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== undefined && k !== null) el.append(k);
  return el;
}
function dl(pairs) {
  return h('dl', {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').flatMap(([k, v]) => [
    h('dt', { text: k }), h('dd', {}, v instanceof Node ? v : h('code', { text: String(v) })),
  ]));
}
const link = (href, text) => h('a', { href, text });
function show(...nodes) {
  main.replaceChildren(...nodes);
}

// ---------- HTTP ----------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
function headers(extra) {
  const t = sessionStorage.getItem('sigil-reader-token');
  return { ...(extra || {}), ...(t ? { authorization: `Bearer ${t}` } : {}) };
}
async function fetchOk(path, init) {
  const r = await fetch(path, { ...(init || {}), headers: headers(init && init.headers), credentials: 'same-origin' });
  if (r.status === 401) {
    $('#credential').open = true;
    throw new HttpError(401, 'this log requires a reader credential: enter a token above (or use a client certificate)');
  }
  if (!r.ok) {
    let msg = `${r.status}`;
    try { const j = await r.json(); msg = j.message || msg; } catch { /* not JSON */ }
    throw new HttpError(r.status, msg);
  }
  return r;
}
const getJson = async (path) => (await fetchOk(path)).json();
const getText = async (path) => (await fetchOk(path)).text();
const getBytes = async (path) => new Uint8Array(await (await fetchOk(path)).arrayBuffer());
const postJson = async (path, body) => (await fetchOk(path, {
  method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
})).json();
async function optional(p) {
  try { return await p; } catch (e) { if (e.status === 404) return null; throw e; }
}

// ---------- DER / X.509 ----------

function derAt(u8, off) {
  if (off + 2 > u8.length) throw new Error('truncated DER');
  const tag = u8[off];
  let len = u8[off + 1];
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + u8[off + 2 + i];
    hdr = 2 + n;
  }
  const end = off + hdr + len;
  if (end > u8.length) throw new Error('truncated DER');
  return { tag, body: u8.subarray(off + hdr, end), all: u8.subarray(off, end), end };
}
function derKids(node) {
  const out = [];
  for (let o = 0; o < node.body.length;) { const c = derAt(node.body, o); out.push(c); o = c.end; }
  return out;
}
function oidStr(body) {
  const parts = [Math.floor(body[0] / 40), body[0] % 40];
  let v = 0;
  for (let i = 1; i < body.length; i++) {
    v = v * 128 + (body[i] & 0x7f);
    if (!(body[i] & 0x80)) { parts.push(v); v = 0; }
  }
  return parts.join('.');
}
const NAME_OIDS = { '2.5.4.3': 'CN', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '1.2.840.113549.1.9.1': 'E' };
function nameStr(node) {
  return derKids(node).map((set) => derKids(set).map((atv) => {
    const [oid, val] = derKids(atv);
    const k = NAME_OIDS[oidStr(oid.body)] || oidStr(oid.body);
    return `${k}=${td.decode(val.body)}`;
  }).join('+')).join(', ');
}
function timeStr(node) {
  const s = td.decode(node.body);
  const full = node.tag === 0x17 ? (Number(s.slice(0, 2)) >= 50 ? '19' : '20') + s : s;
  return `${full.slice(0, 4)}-${full.slice(4, 6)}-${full.slice(6, 8)}T${full.slice(8, 10)}:${full.slice(10, 12)}:${full.slice(12, 14)}Z`;
}
// Fulcio's certificate extensions (1.3.6.1.4.1.57264.1.N).
const FULCIO = {
  1: 'Issuer (v1)', 2: 'GitHub Workflow Trigger', 3: 'GitHub Workflow SHA', 4: 'GitHub Workflow Name',
  5: 'GitHub Workflow Repository', 6: 'GitHub Workflow Ref', 8: 'Issuer', 9: 'Build Signer URI',
  10: 'Build Signer Digest', 11: 'Runner Environment', 12: 'Source Repository URI',
  13: 'Source Repository Digest', 14: 'Source Repository Ref', 15: 'Source Repository Identifier',
  16: 'Source Repository Owner URI', 17: 'Source Repository Owner Identifier', 18: 'Build Config URI',
  19: 'Build Config Digest', 20: 'Build Trigger', 21: 'Run Invocation URI',
  22: 'Source Repository Visibility At Signing',
};
function sanList(body) {
  const out = [];
  for (const g of derKids(derAt(body, 0))) {
    const t = g.tag & 0x1f;
    if (t === 1) out.push(td.decode(g.body));
    else if (t === 2) out.push(td.decode(g.body));
    else if (t === 6) out.push(td.decode(g.body));
    else if (t === 0) {
      const [oid, val] = derKids({ body: g.body });
      out.push(`${td.decode(derAt(val.body, 0).body)} (otherName ${oidStr(oid.body)})`);
    }
  }
  return out;
}
// A certificate, or a precertificate's TBSCertificate (CT).
function parseCert(der, tbsOnly) {
  const tbs = tbsOnly ? derAt(der, 0) : derKids(derAt(der, 0))[0];
  const f = derKids(tbs);
  let i = f[0].tag === 0xa0 ? 1 : 0;
  const serial = hex(f[i].body); i += 2;
  const issuer = nameStr(f[i++]);
  const [nb, na] = derKids(f[i++]);
  const subject = nameStr(f[i++]);
  const spki = f[i++].all;
  const out = { serial, issuer, subject, notBefore: timeStr(nb), notAfter: timeStr(na), san: [], fulcio: [], spki };
  const exts = f.find((x) => x.tag === 0xa3);
  if (exts) {
    for (const e of derKids(derAt(exts.body, 0))) {
      const parts = derKids(e);
      const oid = oidStr(parts[0].body);
      const val = parts[parts.length - 1].body;
      if (oid === '2.5.29.17') out.san = sanList(val);
      const m = oid.match(/^1\.3\.6\.1\.4\.1\.57264\.1\.(\d+)$/);
      if (m) {
        const n = Number(m[1]);
        // Up to .6 the value is the raw string; from .8 on a DER UTF8String.
        let v;
        try { v = n <= 6 ? td.decode(val) : td.decode(derAt(val, 0).body); } catch { v = hex(val); }
        out.fulcio.push([FULCIO[n] || `1.3.6.1.4.1.57264.1.${n}`, v]);
      }
    }
  }
  return out;
}
function pemBlocks(text) {
  const out = [];
  const re = /-----BEGIN ([A-Z ]+)-----([\s\S]*?)-----END \1-----/g;
  let m;
  while ((m = re.exec(text))) out.push({ type: m[1], der: b64d(m[2].replace(/\s+/g, '')) });
  return out;
}
// Every certificate or public key an entry body names, whatever its kind.
function signersOf(value, key, parentKey, out = []) {
  if (typeof value === 'string') {
    if (key === 'rawBytes' && parentKey === 'x509Certificate') out.push({ type: 'CERTIFICATE', der: b64d(value) });
    else if (key === 'rawBytes' && parentKey === 'publicKey') out.push({ type: 'PUBLIC KEY', der: b64d(value) });
    else if (value.length > 60 && /^[A-Za-z0-9+/=]+$/.test(value)) {
      try {
        const t = atob(value);
        if (t.startsWith('-----BEGIN')) out.push(...pemBlocks(t));
      } catch { /* not base64 */ }
    }
  } else if (Array.isArray(value)) {
    value.forEach((v) => signersOf(v, key, parentKey, out));
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) signersOf(v, k, key, out);
  }
  return out;
}
async function signerCard(s) {
  if (s.type !== 'CERTIFICATE') {
    return h('div', { class: 'card' }, h('h3', { text: 'Public key (key-based signature)' }),
      dl([['SHA-256 of the key', hex(await sha256(s.der))]]));
  }
  const c = parseCert(s.der);
  return h('div', { class: 'card' }, h('h3', { text: `Certificate: ${c.san[0] || c.subject || '(no name)'}` }),
    dl([['Identity (SAN)', c.san.join(', ')], ['Subject', c.subject], ['Issuer', c.issuer],
      ['Valid', `${c.notBefore} to ${c.notAfter}`], ['Serial', c.serial],
      ...c.fulcio]));
}

// ---------- signatures ----------

function ecdsaRaw(derSig, n) {
  const [r, s] = derKids(derAt(derSig, 0)).map((x) => {
    let b = x.body;
    while (b.length > n && b[0] === 0) b = b.subarray(1);
    if (b.length > n) throw new Error('bad ECDSA signature');
    return concat(new Uint8Array(n - b.length), b);
  });
  return concat(r, s);
}
const KEY_KINDS = {
  PKIX_ECDSA_P256_SHA_256: { imp: { name: 'ECDSA', namedCurve: 'P-256' }, ver: { name: 'ECDSA', hash: 'SHA-256' }, n: 32 },
  PKIX_ECDSA_P384_SHA_384: { imp: { name: 'ECDSA', namedCurve: 'P-384' }, ver: { name: 'ECDSA', hash: 'SHA-384' }, n: 48 },
  PKIX_ED25519: { imp: { name: 'Ed25519' }, ver: { name: 'Ed25519' } },
};

let trustPromise;
// The trusted root's log keys: [{kind, logId (bytes), spki, key (CryptoKey), ct}].
function trust() {
  if (!trustPromise) {
    trustPromise = (async () => {
      const bytes = await getBytes('../api/v1/trust/trusted_root.json');
      $('#root-digest').textContent = hex(await sha256(bytes));
      const root = JSON.parse(td.decode(bytes));
      const keys = [];
      for (const [list, ct] of [[root.tlogs || [], false], [root.ctlogs || [], true]]) {
        for (const l of list) {
          const kind = KEY_KINDS[l.publicKey && l.publicKey.keyDetails];
          if (!kind) continue;
          const spki = b64d(l.publicKey.rawBytes);
          try {
            const key = await crypto.subtle.importKey('spki', spki, kind.imp, false, ['verify']);
            keys.push({ kind, spki, key, ct, url: l.baseUrl, logId: b64d(l.logId.keyId) });
          } catch { /* a key type this browser lacks */ }
        }
      }
      let witnesses = [];
      try { witnesses = (await getJson('../api/v1/trust/witnesses.json')).logs || []; } catch { /* none */ }
      return { keys, witnesses };
    })();
  }
  return trustPromise;
}

function parseNote(note) {
  const cut = note.indexOf('\n\n');
  if (cut < 0) throw new Error('the checkpoint is not a signed note');
  const text = note.slice(0, cut + 1);
  const sigs = note.slice(cut + 2).split('\n').filter(Boolean).map((l) => {
    const m = l.match(/^\u2014 (\S+) (\S+)$/);
    if (!m) throw new Error(`malformed signature line: ${l}`);
    return { name: m[1], raw: b64d(m[2]) };
  });
  const lines = text.split('\n');
  const size = Number(lines[1]);
  if (!/^\d+$/.test(lines[1] || '') || !Number.isSafeInteger(size)) throw new Error('the checkpoint has no tree size');
  return { text, sigs, origin: lines[0], size, root: b64d(lines[2] || '') };
}

async function ed25519KeyId(name, type, pub) {
  return (await sha256(concat(te.encode(`${name}\n`), new Uint8Array([type]), pub))).subarray(0, 4);
}

// Verifies a checkpoint note with the trusted root's log keys; returns it with the verifying
// key and the witness cosignatures that verify with the deployment's witness keys.
async function verifiedCheckpoint(note, ct) {
  const cp = parseNote(note);
  const { keys, witnesses } = await trust();
  let signer = null;
  for (const s of cp.sigs) {
    const hint = s.raw.subarray(0, 4);
    const sig = s.raw.subarray(4);
    for (const k of keys.filter((x) => x.ct === ct)) {
      let ok = false;
      if (k.kind.n) {
        if (!eq(hint, (await sha256(k.spki)).subarray(0, 4))) continue;
        try { ok = await crypto.subtle.verify(k.kind.ver, k.key, ecdsaRaw(sig, k.kind.n), te.encode(cp.text)); } catch { ok = false; }
      } else {
        const pub = new Uint8Array(await crypto.subtle.exportKey('raw', k.key));
        if (!eq(hint, await ed25519KeyId(s.name, 1, pub))) continue;
        ok = await crypto.subtle.verify(k.kind.ver, k.key, sig, te.encode(cp.text));
      }
      if (ok) { signer = { name: s.name, key: k }; break; }
    }
    if (signer) break;
  }
  if (!signer) throw new Error(`the checkpoint of ${cp.origin} carries no valid signature of a trusted log key`);
  // Witness cosignatures (C2SP cosignature/v1) by the keys in witnesses.json.
  const cosigned = [];
  const policy = witnesses.find((l) => l.logId && b64d(l.logId.keyId).every((b, i) => b === signer.key.logId[i]));
  for (const w of (policy && policy.witnesses) || []) {
    const [name, , k64] = String(w.vkey).split('+');
    const typed = b64d(k64 || '');
    if (typed[0] !== 4) continue;
    const pub = typed.subarray(1);
    const id = await ed25519KeyId(name, 4, pub);
    const line = cp.sigs.find((s) => s.name === name && eq(s.raw.subarray(0, 4), id));
    if (!line) continue;
    const ts = line.raw.subarray(4, 12);
    const t = ts.reduce((n, b) => n * 256 + b, 0);
    try {
      const key = await crypto.subtle.importKey('raw', pub, { name: 'Ed25519' }, false, ['verify']);
      if (await crypto.subtle.verify({ name: 'Ed25519' }, key, line.raw.subarray(12), te.encode(`cosignature/v1\ntime ${t}\n${cp.text}`))) cosigned.push(name);
    } catch { /* no Ed25519 in this browser */ }
  }
  return { ...cp, signer, cosigned, threshold: policy ? policy.threshold : 0 };
}

// ---------- Merkle proofs (RFC 9162 §2.1) ----------

const leafHash = (d) => sha256(concat(new Uint8Array([0]), d));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));
const lp2 = (n) => { let k = 1; while (k * 2 < n) k *= 2; return k; };

async function rootFromInclusion(index, size, leaf, proof) {
  if (!(index < size)) throw new Error(`index ${index} is outside a tree of ${size}`);
  let fn = index; let sn = size - 1; let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error('the inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('the inclusion proof is too short');
  return r;
}

async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  if (first === second) {
    if (proof.length || !eq(firstRoot, secondRoot)) throw new Error(`two roots for tree size ${first}`);
    return;
  }
  if (first === 0 || first > second) throw new Error(`no consistency proof from ${first} to ${second}`);
  const path = (first & (first - 1)) === 0 ? [firstRoot, ...proof] : proof;
  if (!path.length) throw new Error('empty consistency proof');
  let fn = first - 1; let sn = second - 1;
  while (fn % 2 === 1) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  let fr = path[0]; let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) throw new Error('the consistency proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('the consistency proof is too short');
  if (!eq(fr, firstRoot)) throw new Error(`the proof does not lead to the root of size ${first}`);
  if (!eq(sr, secondRoot)) throw new Error(`the proof does not lead to the root of size ${second}`);
}

// ---------- Rekor v2 tiles (C2SP tlog-tiles) ----------

function tileIndex(n) {
  const s = String(n).padStart(3, '0');
  const groups = [];
  for (let end = s.length; end > 0; end -= 3) groups.unshift(s.slice(Math.max(0, end - 3), end).padStart(3, '0'));
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}
class Tiles {
  constructor(size) { this.size = size; this.cache = new Map(); }
  async tile(level, index) {
    const have = Math.floor(this.size / 2 ** (8 * level)) - index * 256;
    if (have <= 0) throw new Error(`tile ${level}/${index} is beyond the tree`);
    const path = `../api/v2/tile/${level}/${tileIndex(index)}${have < 256 ? `.p/${have}` : ''}`;
    if (!this.cache.has(path)) this.cache.set(path, getBytes(path));
    const data = await this.cache.get(path);
    if (data.length !== Math.min(have, 256) * 32) throw new Error(`tile ${path} has ${data.length} bytes`);
    return data;
  }
  // The hash of the complete subtree at (level, index).
  async node(level, index) {
    const t = Math.floor(level / 8); const r = level - 8 * t;
    const first = index * 2 ** r;
    const data = await this.tile(t, Math.floor(first / 256));
    let row = [];
    for (let j = 0; j < 2 ** r; j++) {
      const k = (first % 256) + j;
      row.push(data.subarray(k * 32, k * 32 + 32));
    }
    while (row.length > 1) {
      const next = [];
      for (let j = 0; j < row.length; j += 2) next.push(await nodeHash(row[j], row[j + 1]));
      row = next;
    }
    return row[0];
  }
  // MTH(D[lo:hi]).
  async mth(lo, hi) {
    const n = hi - lo;
    if ((n & (n - 1)) === 0 && lo % n === 0) return this.node(Math.log2(n), lo / n);
    const k = lp2(n);
    return nodeHash(await this.mth(lo, lo + k), await this.mth(lo + k, hi));
  }
  async inclusion(m, lo = 0, hi = this.size) {
    const n = hi - lo;
    if (n === 1) return [];
    const k = lp2(n);
    if (m < k) return [...await this.inclusion(m, lo, lo + k), await this.mth(lo + k, hi)];
    return [...await this.inclusion(m - k, lo + k, hi), await this.mth(lo, lo + k)];
  }
  async consistency(m, lo = 0, hi = this.size, b = true) {
    const n = hi - lo;
    if (m === n) return b ? [] : [await this.mth(lo, hi)];
    const k = lp2(n);
    if (m <= k) return [...await this.consistency(m, lo, lo + k, b), await this.mth(lo + k, hi)];
    return [...await this.consistency(m - k, lo + k, hi, false), await this.mth(lo, lo + k)];
  }
  async entry(index) {
    const t = Math.floor(index / 256);
    const have = Math.min(256, this.size - t * 256);
    const path = `../api/v2/tile/entries/${tileIndex(t)}${have < 256 ? `.p/${have}` : ''}`;
    if (!this.cache.has(path)) this.cache.set(path, getBytes(path));
    const data = await this.cache.get(path);
    let o = 0;
    for (let j = 0; j < have; j++) {
      const len = data[o] * 256 + data[o + 1];
      if (j === index % 256) return data.subarray(o + 2, o + 2 + len);
      o += 2 + len;
    }
    throw new Error(`entry ${index} is not in its bundle`);
  }
}

// ---------- logs ----------

const LOGS = {
  v1: { label: 'Rekor v1', checkpoint: async () => (await getJson('../api/v1/log')).signedTreeHead, ct: false },
  v2: { label: 'Rekor v2', checkpoint: () => getText('../api/v2/checkpoint'), ct: false },
  ct: { label: 'Certificate Transparency', checkpoint: () => getText('../ct/checkpoint'), ct: true },
};
let logsPromise;
function logs() {
  if (!logsPromise) {
    // A log this server does not run answers 404; one the reader may not read, 401 or 403:
    // it is listed with that error.
    logsPromise = Promise.all(Object.entries(LOGS).map(async ([id, l]) => {
      try {
        const note = await optional(l.checkpoint());
        return note ? [id, note] : null;
      } catch (e) {
        return [id, e];
      }
    })).then((x) => Object.fromEntries(x.filter(Boolean)));
  }
  return logsPromise;
}
async function current(id) {
  const note = (await logs())[id];
  if (note === undefined) throw new Error(`this server runs no ${LOGS[id].label} log`);
  if (note instanceof Error) throw note;
  return verifiedCheckpoint(note, LOGS[id].ct);
}

// Consistency of an earlier verified checkpoint with the current one, proven by the log.
async function consistencyProof(id, first, second) {
  if (id === 'v1') {
    const p = await getJson(`../api/v1/log/proof?firstSize=${first}&lastSize=${second}`);
    return (p.hashes || []).map(unhex);
  }
  if (id === 'ct') {
    const p = await getJson(`../ct/v1/get-sth-consistency?first=${first}&second=${second}`);
    return (p.consistency || []).map(b64d);
  }
  return new Tiles(second).consistency(first);
}

// ---------- verdicts ----------

function steps() {
  const list = h('ol', { class: 'steps' });
  return {
    list,
    ok(text) { list.append(h('li', { class: 'ok', text: `✔ ${text}` })); },
  };
}
function verdict(ok, text) {
  const el = h('p', { class: `verdict ${ok ? 'ok' : 'failed'}`, role: 'status', 'data-verified': ok ? 'true' : 'false', text: ok ? `✔ Verified: ${text}` : `✘ Verification failed: ${text}` });
  document.documentElement.dataset.renderMs = String(Math.round(performance.now()));
  return el;
}

// ---------- pages ----------

async function homePage() {
  const all = await logs();
  const sections = [h('h2', { text: 'Logs' })];
  for (const [id, note] of Object.entries(all)) {
    const card = h('section', { class: 'card', 'aria-labelledby': `log-${id}` }, h('h3', { id: `log-${id}`, text: LOGS[id].label }));
    sections.push(card);
    try {
      if (note instanceof Error) throw note;
      const cp = await verifiedCheckpoint(note, LOGS[id].ct);
      const s = steps();
      s.ok(`checkpoint signed by ${cp.signer.name} (trusted root key)`);
      if (cp.threshold) s.ok(`cosigned by ${cp.cosigned.length} of its witnesses (${cp.cosigned.join(', ') || 'none'}; ${cp.threshold} required)`);
      const stored = JSON.parse(localStorage.getItem(`sigil-cp-${id}-${cp.origin}`) || 'null');
      let consistency = 'first visit: this checkpoint is remembered, and the next visit checks the log grew from it';
      if (stored && stored.size > 0 && stored.size <= cp.size) {
        const proof = stored.size === cp.size ? [] : await consistencyProof(id, stored.size, cp.size);
        await verifyConsistency(stored.size, cp.size, b64d(stored.root), cp.root, proof);
        consistency = `consistent with the checkpoint seen before (size ${stored.size})`;
        s.ok(consistency);
      } else if (stored && stored.size > cp.size) {
        throw new Error(`the log shrank: size ${stored.size} was seen before, now ${cp.size}`);
      }
      localStorage.setItem(`sigil-cp-${id}-${cp.origin}`, JSON.stringify({ size: cp.size, root: b64e(cp.root) }));
      const recent = await newest(id, cp);
      card.append(dl([['Origin', cp.origin], ['Tree size', String(cp.size)], ['Root hash', hex(cp.root)],
        ['Entries per minute', recent.rate]]), s.list);
      const form = h('form', { class: 'consistency', 'data-log': id },
        h('label', { for: `from-${id}`, text: 'Check consistency from an earlier checkpoint (paste it)' }),
        h('textarea', { id: `from-${id}`, rows: '4', cols: '60' }), h('button', { type: 'submit', text: 'Check' }),
        h('p', { class: 'result', role: 'status' }));
      form.addEventListener('submit', (ev) => { ev.preventDefault(); checkConsistency(form, id, cp); });
      card.append(h('h3', { text: 'Newest entries' }), recent.table, form);
    } catch (e) {
      card.append(h('p', { class: 'error', text: `${e.message}` }));
    }
  }
  show(...sections);
}

async function checkConsistency(form, id, cp) {
  const out = form.querySelector('.result');
  try {
    const old = await verifiedCheckpoint(form.querySelector('textarea').value.trim() + '\n', LOGS[id].ct);
    if (old.origin !== cp.origin) throw new Error(`another log: ${old.origin}`);
    await verifyConsistency(old.size, cp.size, old.root, cp.root, old.size === cp.size ? [] : await consistencyProof(id, old.size, cp.size));
    out.replaceChildren(verdict(true, `size ${old.size} is a prefix of the current size ${cp.size}`));
  } catch (e) {
    out.replaceChildren(verdict(false, e.message));
  }
}

async function newest(id, cp) {
  const n = Math.min(10, cp.size);
  const table = h('table', {}, h('thead', {}, h('tr', {}, ['Index', 'Time', 'Kind', 'Signer'].map((t) => h('th', { scope: 'col', text: t })))));
  const body = h('tbody');
  table.append(body);
  const times = [];
  const row = (idx, time, kind, who) => body.append(h('tr', {}, h('td', {}, link(`#/${id}/${idx}`, String(idx))), h('td', { text: time }), h('td', { text: kind }), h('td', { text: who })));
  if (!n) return { table, rate: '–' };
  if (id === 'v1') {
    const idxs = Array.from({ length: n }, (_, i) => cp.size - 1 - i);
    const got = await postJson('../api/v1/log/entries/retrieve', { logIndexes: idxs });
    const entries = got.map((m) => Object.values(m)[0]).sort((a, b) => b.logIndex - a.logIndex);
    for (const e of entries) {
      const body = JSON.parse(td.decode(b64d(e.body)));
      times.push(e.integratedTime);
      row(e.logIndex, new Date(e.integratedTime * 1000).toISOString(), `${body.kind} ${body.apiVersion}`, identityOf(body));
    }
  } else if (id === 'v2') {
    const tiles = new Tiles(cp.size);
    for (let i = cp.size - 1; i >= cp.size - n; i--) {
      const body = JSON.parse(td.decode(await tiles.entry(i)));
      row(i, '(in the signer\'s bundle)', `${body.kind} ${body.apiVersion}`, identityOf(body));
    }
  } else {
    const got = await getJson(`../ct/v1/get-entries?start=${cp.size - n}&end=${cp.size - 1}`);
    got.entries.forEach((e, j) => {
      const leaf = ctLeaf(b64d(e.leaf_input));
      times.push(leaf.timestamp / 1000);
      row(cp.size - n + j, new Date(leaf.timestamp).toISOString(), leaf.kind, leaf.cert.san.join(', ') || leaf.cert.subject);
    });
    body.append(...Array.from(body.children).reverse());
  }
  let rate = id === 'v2' ? 'no timestamps in this log\'s entries' : 'too few entries to tell';
  if (times.length > 1) {
    const span = (Math.max(...times) - Math.min(...times)) / 60;
    rate = span > 0 ? ((times.length - 1) / span).toFixed(1) : `${times.length} in the same second`;
  }
  return { table, rate };
}

function identityOf(body) {
  for (const s of signersOf(body)) {
    if (s.type === 'CERTIFICATE') {
      try { const c = parseCert(s.der); return c.san.join(', ') || c.subject; } catch { return '(unreadable certificate)'; }
    }
    return '(public key)';
  }
  return '';
}

function ctLeaf(leaf) {
  if (leaf[0] !== 0 || leaf[1] !== 0) throw new Error('not an RFC 6962 v1 timestamped entry');
  const timestamp = leaf.subarray(2, 10).reduce((n, b) => n * 256 + b, 0);
  const type = leaf[10] * 256 + leaf[11];
  const len = (o) => leaf[o] * 65536 + leaf[o + 1] * 256 + leaf[o + 2];
  if (type === 0) return { timestamp, kind: 'X.509 certificate', cert: parseCert(leaf.subarray(15, 15 + len(12))) };
  if (type === 1) return { timestamp, kind: 'precertificate', cert: parseCert(leaf.subarray(47, 47 + len(44)), true), issuerKeyHash: hex(leaf.subarray(12, 44)) };
  throw new Error(`unknown CT entry type ${type}`);
}

// One entry: what it holds, and its inclusion in the current checkpoint, checked here.
async function entryPage(id, ref) {
  show(h('p', { class: 'verdict pending', text: 'Checking…' }));
  const s = steps();
  const facts = [];
  const parts = [];
  let ok = true; let reason = '';
  try {
    const cp = await current(id);
    s.ok(`current checkpoint of ${cp.origin} (size ${cp.size}) signed by ${cp.signer.name}${cp.cosigned.length ? `, cosigned by ${cp.cosigned.join(', ')}` : ''}`);
    if (id === 'v1') {
      const got = /^\d+$/.test(ref) ? await getJson(`../api/v1/log/entries?logIndex=${ref}`) : await getJson(`../api/v1/log/entries/${ref}`);
      const [uuid, e] = Object.entries(got)[0];
      const raw = b64d(e.body);
      const body = JSON.parse(td.decode(raw));
      facts.push(['Kind', `${body.kind} ${body.apiVersion}`], ['Log index', String(e.logIndex)], ['UUID', uuid],
        ['Integrated time', new Date(e.integratedTime * 1000).toISOString()], ['Log ID', e.logID]);
      parts.push(...await Promise.all(signersOf(body).map(signerCard)), h('h3', { text: 'Body' }), h('pre', { tabindex: '0', text: JSON.stringify(body, null, 2) }));
      const leaf = await leafHash(raw);
      if (!uuid.toLowerCase().endsWith(hex(leaf))) throw new Error(`the entry's leaf hash ${hex(leaf)} is not its UUID ${uuid}`);
      s.ok(`leaf hash ${hex(leaf)} is the entry's UUID`);
      const p = e.verification && e.verification.inclusionProof;
      if (!p) throw new Error('the log served no inclusion proof');
      const root = await rootFromInclusion(p.logIndex, p.treeSize, leaf, p.hashes.map(unhex));
      if (!eq(root, unhex(p.rootHash))) throw new Error(`the inclusion proof of entry ${p.logIndex} leads to root ${hex(root)}, not the proof's root ${p.rootHash}`);
      s.ok(`inclusion proof (${p.hashes.length} hashes) leads to root ${p.rootHash} at size ${p.treeSize}`);
      if (p.checkpoint) {
        const pc = await verifiedCheckpoint(p.checkpoint, false);
        if (pc.size !== p.treeSize || !eq(pc.root, root)) throw new Error(`the proof's checkpoint (size ${pc.size}) does not name the proof's root`);
        s.ok(`the proof's checkpoint names that root and is signed by ${pc.signer.name}`);
      }
      if (p.treeSize > cp.size) throw new Error(`the proof is for size ${p.treeSize}, beyond the current checkpoint (${cp.size})`);
      if (p.treeSize !== cp.size) {
        await verifyConsistency(p.treeSize, cp.size, root, cp.root, await consistencyProof('v1', p.treeSize, cp.size));
        s.ok(`size ${p.treeSize} is consistent with the current checkpoint (consistency proof)`);
      } else if (!eq(root, cp.root)) {
        throw new Error(`the proof's root is not the current checkpoint's root at size ${cp.size}`);
      }
    } else if (id === 'v2') {
      const index = Number(ref);
      if (!Number.isSafeInteger(index)) throw new Error(`not an index: ${ref}`);
      const tiles = new Tiles(cp.size);
      if (index >= cp.size) throw new Error(`index ${index} is not in the current checkpoint (size ${cp.size})`);
      const raw = await tiles.entry(index);
      const body = JSON.parse(td.decode(raw));
      const leaf = await leafHash(raw);
      facts.push(['Kind', `${body.kind} ${body.apiVersion}`], ['Log index', String(index)], ['UUID (leaf hash)', hex(leaf)],
        ['Time', 'Rekor v2 entries carry none: the signer\'s bundle holds its RFC 3161 timestamp']);
      parts.push(...await Promise.all(signersOf(body).map(signerCard)), h('h3', { text: 'Body' }), h('pre', { tabindex: '0', text: JSON.stringify(body, null, 2) }));
      s.ok(`leaf hash ${hex(leaf)} of the entry read from the entry bundle`);
      const stored = await tiles.node(0, index);
      if (!eq(stored, leaf)) throw new Error(`the level-0 tile holds ${hex(stored)} at index ${index}, not the entry's leaf hash`);
      const proof = await tiles.inclusion(index);
      const root = await rootFromInclusion(index, cp.size, leaf, proof);
      if (!eq(root, cp.root)) throw new Error(`the inclusion proof of entry ${index} leads to root ${hex(root)}, not the checkpoint's ${hex(cp.root)}`);
      s.ok(`inclusion proof (${proof.length} hashes from the tiles) leads to the checkpoint's root`);
    } else {
      const index = Number(ref);
      if (!Number.isSafeInteger(index) || index >= cp.size) throw new Error(`index ${ref} is not in the current checkpoint (size ${cp.size})`);
      const got = await getJson(`../ct/v1/get-entries?start=${index}&end=${index}`);
      const raw = b64d(got.entries[0].leaf_input);
      const e = ctLeaf(raw);
      facts.push(['Kind', e.kind], ['Log index', String(index)], ['Timestamp', new Date(e.timestamp).toISOString()],
        ['Issuer key hash', e.issuerKeyHash]);
      const c = e.cert;
      parts.push(h('div', { class: 'card' }, h('h3', { text: `Certificate: ${c.san[0] || c.subject}` }),
        dl([['Identity (SAN)', c.san.join(', ')], ['Subject', c.subject], ['Issuer', c.issuer],
          ['Valid', `${c.notBefore} to ${c.notAfter}`], ['Serial', c.serial], ...c.fulcio])));
      const leaf = await leafHash(raw);
      s.ok(`leaf hash ${hex(leaf)}`);
      const p = await getJson(`../ct/v1/get-proof-by-hash?hash=${encodeURIComponent(b64e(leaf))}&tree_size=${cp.size}`);
      if (p.leaf_index !== index) throw new Error(`the log proves index ${p.leaf_index} for this leaf, not ${index}`);
      const root = await rootFromInclusion(index, cp.size, leaf, p.audit_path.map(b64d));
      if (!eq(root, cp.root)) throw new Error(`the inclusion proof of entry ${index} leads to root ${hex(root)}, not the checkpoint's ${hex(cp.root)}`);
      s.ok(`inclusion proof (${p.audit_path.length} hashes) leads to the checkpoint's root`);
    }
  } catch (e) {
    ok = false; reason = e.message;
  }
  const title = h('h2', { text: `${LOGS[id].label} entry ${ref}` });
  show(title, verdict(ok, ok ? 'the entry is in the log' : reason), dl(facts), h('h3', { text: 'Checks made in this browser' }), s.list, ...parts);
}

async function searchPage(q) {
  const all = await logs();
  const results = [];
  const add = (id, ref, how) => results.push(h('li', {}, link(`#/${id}/${ref}`, `${LOGS[id].label} entry ${ref}`), ` (${how})`));
  const tries = [];
  const v = q.trim();
  if (/^\d+$/.test(v)) {
    for (const id of Object.keys(all)) add(id, v, 'by index');
  } else if (/^[0-9a-fA-F]{64}$|^[0-9a-fA-F]{80}$/.test(v) || /^sha256:[0-9a-f]{64}$/.test(v)) {
    const hx = v.replace(/^sha256:/, '').toLowerCase();
    if (all.v1) {
      tries.push(optional(getJson(`../api/v1/log/entries/${hx}`)).then((got) => got && Object.entries(got).forEach(([u, e]) => add('v1', u, `UUID, index ${e.logIndex}`))));
      if (hx.length === 64) tries.push(postJson('../api/v1/index/retrieve', { hash: `sha256:${hx}` }).then((us) => us.forEach((u) => add('v1', u, 'artifact SHA-256'))));
    }
    if (all.v2 && hx.length === 64) {
      tries.push(postJson('../api/v2/sigil/index/retrieve', { hash: `sha256:${hx}`, uuid: hx }).then((hits) => hits.forEach((x) => add('v2', x.logIndex, 'artifact SHA-256 or UUID'))));
    }
  } else if (v) {
    if (all.v1) tries.push(postJson('../api/v1/index/retrieve', { email: v }).then((us) => us.forEach((u) => add('v1', u, 'signer identity'))));
    if (all.v2) tries.push(postJson('../api/v2/sigil/index/retrieve', { email: v }).then((hits) => hits.forEach((x) => add('v2', x.logIndex, 'signer identity'))));
  }
  const errors = [];
  await Promise.all(tries.map((t) => t.catch((e) => errors.push(e.message))));
  show(h('h2', { text: `Results for “${v}”` }),
    results.length ? h('ul', { class: 'results' }, results) : h('p', { class: 'none', text: 'No entry matches.' }),
    ...errors.map((m) => h('p', { class: 'error', text: m })));
  document.documentElement.dataset.renderMs = String(Math.round(performance.now()));
}

// ---------- routing ----------

async function route(ev) {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ''));
  try {
    const m = hash.match(/^(v1|v2|ct)\/(.+)$/);
    if (m) await entryPage(m[1], m[2]);
    else if (hash.startsWith('search/')) await searchPage(hash.slice(7));
    else await homePage();
  } catch (e) {
    show(h('p', { class: 'error', role: 'alert', text: e.message }));
  }
  // After a navigation within the page, a screen reader or keyboard user starts at the new
  // content; on first load, at the top of the page.
  if (ev) main.focus({ preventScroll: true });
}

$('#search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  location.hash = `#/search/${encodeURIComponent($('#q').value.trim())}`;
});
$('#file').addEventListener('change', async () => {
  const f = $('#file').files[0];
  if (!f) return;
  const digest = hex(await sha256(new Uint8Array(await f.arrayBuffer())));
  $('#q').value = digest;
  location.hash = `#/search/${digest}`;
});
$('#token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('#token').value.trim();
  if (t) sessionStorage.setItem('sigil-reader-token', t); else sessionStorage.removeItem('sigil-reader-token');
  logsPromise = null; trustPromise = null;
  route(ev);
});
window.addEventListener('hashchange', route);
trust().catch(() => {});
route(null);
