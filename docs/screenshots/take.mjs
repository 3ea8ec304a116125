// Screenshots of the unlearning report and of the MLflow UI's compare view, in headless Chromium.
//
//   npm i @sparticuz/chromium puppeteer-core      (a Chromium build from the npm registry)
//   ./run main && ./run ui --port 5055 &
//   node docs/screenshots/take.mjs .forgetting/reports/unlearning.html http://127.0.0.1:5055 docs/screenshots
//
// The compare view shows the grid's finetune sweeps of one checkpoint step side by side; the runs
// are found through MLflow's REST API, so the script needs no run IDs.
import chromium from '@sparticuz/chromium';
import puppeteer from 'puppeteer-core';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [report, ui, out] = process.argv.slice(2);
const api = async (route, body) => (await fetch(`${ui}/api/2.0/mlflow/${route}`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })).json();

const { experiment } = await (await fetch(`${ui}/api/2.0/mlflow/experiments/get-by-name?experiment_name=unlearning`)).json();
const { runs } = await api('runs/search', {
  experiment_ids: [experiment.experiment_id], max_results: 200,
  filter: "tags.`forgetting.entry_point` = 'finetune' and attributes.status = 'FINISHED'" });
const picked = runs.filter((run) => (run.data.params || []).some((p) => p.key === 'step' && p.value === '0')).slice(0, 10);
const ids = picked.map((run) => run.info.run_id);

const browser = await puppeteer.launch({ args: chromium.args, executablePath: await chromium.executablePath(),
                                         headless: true, defaultViewport: { width: 1440, height: 1800 } });
const page = await browser.newPage();
await page.goto(pathToFileURL(path.resolve(report)).href, { waitUntil: 'networkidle0' });
await page.screenshot({ path: path.join(out, 'report.png') });  // the first screen: the whole report is long
const compare = `${ui}/#/compare-runs?runs=${encodeURIComponent(JSON.stringify(ids))}` +
                `&experiments=${encodeURIComponent(JSON.stringify([experiment.experiment_id]))}`;
await page.goto(compare, { waitUntil: 'networkidle0' });
await new Promise((resolve) => setTimeout(resolve, 3000));  // the compare view's charts draw after the data
await page.screenshot({ path: path.join(out, 'mlflow-compare.png') });
await browser.close();
console.log(`report.png and mlflow-compare.png (${ids.length} finetune runs) in ${out}`);
