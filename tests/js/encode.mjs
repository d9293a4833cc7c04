// encode.mjs DIR < texts.jsonl > ids.jsonl
// The independent side of the differential tests: transformers.js loads the tokenizer in DIR (tokenizer.json +
// tokenizer_config.json) offline and encodes each {"texts": [...]} line to {"input_ids": [[...], ...]} with
// special tokens and no truncation. With --bench it instead reports tokens/s over the texts.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { AutoTokenizer, env } from '@huggingface/transformers';

const args = process.argv.slice(2);
const bench = args[0] === '--bench';
const dir = path.resolve(bench ? args[1] : args[0]);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useBrowserCache = false;
env.useFSCache = false;
env.localModelPath = path.dirname(dir) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(dir), { local_files_only: true });

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
const lines = [];
for await (const line of rl) if (line.length) lines.push(JSON.parse(line).texts);

if (bench) {
	// one warm-up pass (JIT, BPE cache), then whole passes for at least 3 s, as bench/tokenize_bench.c does
	const texts = lines.flat();
	for (const t of texts) tok.encode(t);
	let tokens = 0, passes = 0, s = 0;
	const t0 = process.hrtime.bigint();
	do {
		for (const t of texts) tokens += tok.encode(t).length;
		passes++;
		s = Number(process.hrtime.bigint() - t0) / 1e9;
	} while (s < 3);
	console.log(JSON.stringify({ texts: texts.length, passes, tokens, seconds: s, tokens_per_s: tokens / s }));
} else {
	const out = [];
	for (const texts of lines) out.push(JSON.stringify({ input_ids: texts.map((t) => tok.encode(t)) }));
	process.stdout.write(out.join('\n') + '\n');
}
