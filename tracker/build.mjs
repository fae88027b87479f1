// Builds the tracker bundles into dist/ for Django to serve, prints their sizes and fails when
// one is over its budget (minified, then gzipped).
//
//   dist/loader.js              per-site loader; Django fills in NABORIA_CONFIG (not cached long)
//   dist/tracker.<hash>.js      tracker core                      budget 2.5 KB
//   dist/ads.<hash>.js          ads module (sites with ads)       budget 1.5 KB
//   dist/banner.<hash>.js       consent banner (sites with one)   budget 8 KB
//   dist/linker.<hash>.js       cross-domain links (sites on several domains, with a banner)
//                                                                  budget 1.5 KB
//   dist/tags.<hash>.js         tag manager (sites with tags or pages with blocking markup)
//                                                                  budget 2.5 KB
//   dist/recs.<hash>.js         recommendations (sites with them, modern browsers) budget 1 KB
//   dist/dashboard.<hash>.js    analytics dashboard + .css        budget 40 KB
//   dist/manifest.json          {"tracker": "tracker.<hash>.js", ...} read by Django
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { buildSync } from 'esbuild'

const BUNDLES = [
  { name: 'loader', entry: 'src/loader.js', budget: 1536, hashed: false },
  { name: 'tracker', entry: 'src/core/index.js', budget: 2560, hashed: true },
  { name: 'ads', entry: 'src/ads/index.js', budget: 1536, hashed: true },
  { name: 'banner', entry: 'src/cmp/index.js', budget: 8192, hashed: true },
  { name: 'tags', entry: 'src/tags/index.js', budget: 2560, hashed: true },
  { name: 'recs', entry: 'src/recs/index.js', budget: 1024, hashed: true },
  { name: 'linker', entry: 'src/linker/index.js', budget: 1536, hashed: true },
  // The analytics dashboard (admin side, not embedded in sites): uPlot for the graph.
  { name: 'dashboard', entry: 'src/dashboard/index.js', budget: 40960, hashed: true },
  { name: 'dashboard_css', entry: 'src/dashboard/dashboard.css', budget: 8192, hashed: true, extension: 'css' },
]

rmSync('dist', { recursive: true, force: true })
mkdirSync('dist')
const manifest = {}
const over = []
for (const bundle of BUNDLES) {
  const result = buildSync({
    entryPoints: [bundle.entry],
    bundle: true,
    minify: true,
    format: bundle.extension === 'css' ? undefined : 'iife',
    target: ['es2019'],
    write: false,
    legalComments: 'none',
  })
  const code = result.outputFiles[0].contents
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 10)
  const extension = bundle.extension || 'js'
  const stem = bundle.name.replace('_css', '')
  const file = bundle.hashed ? `${stem}.${hash}.${extension}` : `${stem}.${extension}`
  writeFileSync(`dist/${file}`, code)
  manifest[bundle.name] = file
  const gzipped = gzipSync(code, { level: 9 }).length
  const verdict = gzipped <= bundle.budget ? 'ok' : 'OVER BUDGET'
  console.log(
    `${file.padEnd(24)} ${String(code.length).padStart(6)} B minified ${String(gzipped).padStart(5)} B gzipped` +
      ` (budget ${bundle.budget} B) ${verdict}`
  )
  if (gzipped > bundle.budget) over.push(file)
}
writeFileSync('dist/manifest.json', JSON.stringify(manifest, null, 2) + '\n')
if (over.length) {
  console.error(`size budget exceeded: ${over.join(', ')}`)
  process.exit(1)
}
console.log(`built ${readdirSync('dist').length} files into tracker/dist`)
