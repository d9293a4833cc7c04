// onnx-run.mjs: runs an ONNX model written by st-export in ONNX Runtime (onnxruntime-node), for tests/export.t.
//   node onnx-run.mjs MODEL.onnx PAD_ID BATCH EXTRA < tokenized.jsonl > embeddings.jsonl
//   node onnx-run.mjs --io MODEL.onnx      prints "inputs -> outputs", the names comma-separated
// Reads st-tokenize --json records (one text each: "input_ids": [[ids]]), groups them BATCH at a time in input
// order, pads every batch to its longest row plus EXTRA positions with PAD_ID (attention_mask 0), and writes one
// {"embedding": [...]} line per text, in input order. token_type_ids (zeros) are given when the model asks for
// them. Checks the outputs' names and shapes on the way; problems go to stderr with exit status 1.
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';

if (process.argv[2] === '--io') {
	const s = await ort.InferenceSession.create(process.argv[3]);
	console.log(s.inputNames.join(',') + ' -> ' + s.outputNames.join(','));
	process.exit(0);
}
const [file, padArg, batchArg, extraArg] = process.argv.slice(2);
const pad = BigInt(padArg), batchSize = Number(batchArg), extra = Number(extraArg);
const rows = readFileSync(0, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l).input_ids[0]);
const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const fail = (msg) => { process.stderr.write(`onnx-run: ${msg}\n`); process.exit(1); };
for (const name of ['sentence_embedding', 'token_embeddings'])
	if (!session.outputNames.includes(name)) fail(`no output ${name} (outputs: ${session.outputNames})`);

const out = [];
for (let start = 0; start < rows.length; start += batchSize) {
	const batch = rows.slice(start, start + batchSize);
	const B = batch.length, T = Math.max(...batch.map((r) => r.length)) + extra;
	const ids = new BigInt64Array(B * T).fill(pad), mask = new BigInt64Array(B * T);
	batch.forEach((r, b) => r.forEach((id, t) => { ids[b * T + t] = BigInt(id); mask[b * T + t] = 1n; }));
	const feeds = { input_ids: new ort.Tensor('int64', ids, [B, T]), attention_mask: new ort.Tensor('int64', mask, [B, T]) };
	if (session.inputNames.includes('token_type_ids'))
		feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(B * T), [B, T]);
	const res = await session.run(feeds);
	const emb = res.sentence_embedding, tok = res.token_embeddings;
	if (emb.dims.length !== 2 || emb.dims[0] !== B) fail(`sentence_embedding has shape [${emb.dims}], batch ${B}`);
	if (tok.dims.length !== 3 || tok.dims[0] !== B || tok.dims[1] !== T)
		fail(`token_embeddings has shape [${tok.dims}], batch ${B}, length ${T}`);
	const dim = emb.dims[1];
	for (let b = 0; b < B; b++)
		out.push(JSON.stringify({ embedding: Array.from(emb.data.subarray(b * dim, (b + 1) * dim)) }));
}
process.stdout.write(out.map((l) => l + '\n').join(''));
