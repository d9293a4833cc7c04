// @huggingface/hub (the Hub's own JavaScript client) as a second implementation of huggingface_hub's cache, for
// tests/hub.t:
//   node hub_cache.mjs download HUB_URL REPO CACHE_DIR   snapshotDownload into CACHE_DIR; prints the snapshot path
//   node hub_cache.mjs scan CACHE_DIR                    scanCacheDir; prints one JSON line per cached revision:
//                                                        {"repo", "commit", "refs", "files": {path: blob name}},
//                                                        then {"warnings": [...]}
import { scanCacheDir, snapshotDownload } from "@huggingface/hub";
import { basename, relative } from "node:path";

const [mode, ...args] = process.argv.slice(2);
console.debug = () => {};   // the library logs each download; stdout carries only our answer
if (mode === "download") {
	const [hubUrl, repo, cacheDir] = args;
	const path = await snapshotDownload({ repo: { type: "model", name: repo }, hubUrl, cacheDir });
	console.log(path);
} else if (mode === "scan") {
	const info = await scanCacheDir(args[0]);
	for (const repo of info.repos) {
		for (const rev of repo.revisions) {
			const files = {};
			for (const f of rev.files)
				files[relative(rev.path, f.path)] = basename(f.blob.path);
			console.log(JSON.stringify({ repo: repo.id.name, type: repo.id.type, commit: rev.commitOid,
				refs: [...rev.refs].sort(), files }));
		}
	}
	console.log(JSON.stringify({ warnings: info.warnings.map((w) => String(w.message ?? w)) }));
} else {
	console.error("usage: hub_cache.mjs download HUB_URL REPO CACHE_DIR | scan CACHE_DIR");
	process.exit(64);
}
