// `node audit.mjs URL`: graphql-http's GraphQL-over-HTTP server audit against URL.
// Prints one line per audit; exits 1 when any MUST or SHOULD audit fails or warns
// (MAY audits are reported, not required), 2 on bad usage or an audit that crashed.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { MUST: { ok: 0, bad: 0 }, SHOULD: { ok: 0, bad: 0 }, MAY: { ok: 0, bad: 0 } };
for (const result of results) {
  const level = result.name.split(' ', 1)[0];
  const ok = result.status === 'ok';
  counts[level][ok ? 'ok' : 'bad'] += 1;
  const status = result.status.toUpperCase().padEnd(6);
  console.log(`${status} ${result.id} ${result.name}`);
  if (!ok) {
    // The response's body says why (e.g. what status or content type came back).
    let body = '';
    try {
      body = (await result.response.text()).slice(0, 300);
    } catch {
      body = '(body unavailable)';
    }
    console.log(`       reason: ${result.reason}`);
    console.log(`       response: ${result.response.status} ${body.replace(/\s+/g, ' ')}`);
  }
}
for (const [level, { ok, bad }] of Object.entries(counts)) {
  console.log(`${level}: ${ok} passed, ${bad} not passed`);
}
process.exit(counts.MUST.bad + counts.SHOULD.bad > 0 ? 1 : 0);
