// sigstore-js as a peer of Sigil's interop tests: sign/attest with the `sigstore` library against
// given CA/log URLs, and verify a bundle with `@sigstore/verify` against a given trusted root
// (the library's own `verify` only takes trust material from TUF).
//
//   node sigstore-js.mjs sign   --fulcio-url U --rekor-url U [--tsa-url U] --token T --artifact F --out B
//   node sigstore-js.mjs attest --fulcio-url U --rekor-url U [--tsa-url U] --token T --artifact F --out B
//                               [--payload-type application/vnd.in-toto+json]
//   node sigstore-js.mjs verify --bundle B --trusted-root R --identity ID --issuer ISS [--artifact F]
//                               [--tlog-threshold N] [--ctlog-threshold N] [--timestamp-threshold N]
//   node sigstore-js.mjs verify-tuf --bundle B --tuf-mirror URL --tuf-root ROOT --tuf-cache DIR
//                                   --identity ID --issuer ISS --artifact F
//     (the library's own `verify`: the trusted root comes from the TUF repository at URL,
//      bootstrapped from ROOT)
//
// Exit status 0 on success; otherwise the error goes to stderr and the status is 1.

import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { bundleFromJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import * as sigstore from 'sigstore';

const [command, ...rest] = process.argv.slice(2);
const { values: opts } = parseArgs({
  args: rest,
  options: {
    'fulcio-url': { type: 'string' },
    'rekor-url': { type: 'string' },
    'tsa-url': { type: 'string' },
    token: { type: 'string' },
    artifact: { type: 'string' },
    out: { type: 'string' },
    'payload-type': { type: 'string', default: 'application/vnd.in-toto+json' },
    bundle: { type: 'string' },
    'trusted-root': { type: 'string' },
    identity: { type: 'string' },
    issuer: { type: 'string' },
    'tlog-threshold': { type: 'string', default: '1' },
    'ctlog-threshold': { type: 'string', default: '1' },
    'timestamp-threshold': { type: 'string', default: '1' },
    'tuf-mirror': { type: 'string' },
    'tuf-root': { type: 'string' },
    'tuf-cache': { type: 'string' },
  },
});

function need(name) {
  if (opts[name] === undefined) throw new Error(`--${name} is required for ${command}`);
  return opts[name];
}

async function signOrAttest(kind) {
  const options = {
    fulcioURL: need('fulcio-url'),
    rekorURL: need('rekor-url'),
    tsaServerURL: opts['tsa-url'],
    identityToken: need('token'),
    timeout: 30000,
    retry: 0,
  };
  const data = await readFile(need('artifact'));
  const bundle = kind === 'sign'
    ? await sigstore.sign(data, options)
    : await sigstore.attest(data, opts['payload-type'], options);
  await writeFile(need('out'), JSON.stringify(bundle));
}

async function verify() {
  const bundle = bundleFromJSON(JSON.parse(await readFile(need('bundle'), 'utf8')));
  const root = TrustedRoot.fromJSON(JSON.parse(await readFile(need('trusted-root'), 'utf8')));
  const artifact = opts.artifact ? await readFile(opts.artifact) : undefined;
  const verifier = new Verifier(toTrustMaterial(root), {
    tlogThreshold: Number(opts['tlog-threshold']),
    ctlogThreshold: Number(opts['ctlog-threshold']),
    timestampThreshold: Number(opts['timestamp-threshold']),
  });
  const signer = verifier.verify(toSignedEntity(bundle, artifact), {
    subjectAlternativeName: need('identity'),
    extensions: { issuer: need('issuer') },
  });
  const { subjectAlternativeName, extensions } = signer.identity ?? {};
  console.log(JSON.stringify({ verified: true, subjectAlternativeName, issuer: extensions?.issuer }));
}

async function verifyTuf() {
  const bundle = JSON.parse(await readFile(need('bundle'), 'utf8'));
  const signer = await sigstore.verify(bundle, await readFile(need('artifact')), {
    tufMirrorURL: need('tuf-mirror'),
    tufRootPath: need('tuf-root'),
    tufCachePath: need('tuf-cache'),
    certificateIdentityEmail: need('identity'),
    certificateIssuer: need('issuer'),
    timeout: 30000,
    retry: 0,
  });
  const { subjectAlternativeName, extensions } = signer.identity ?? {};
  console.log(JSON.stringify({ verified: true, subjectAlternativeName, issuer: extensions?.issuer }));
}

try {
  if (command === 'sign' || command === 'attest') await signOrAttest(command);
  else if (command === 'verify') await verify();
  else if (command === 'verify-tuf') await verifyTuf();
  else throw new Error(`unknown command ${command}: sign | attest | verify | verify-tuf`);
} catch (err) {
  console.error(`sigstore-js ${command} failed: ${err?.stack ?? err}`);
  process.exit(1);
}
