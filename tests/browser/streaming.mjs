// The playground shows a slow turn as it happens: the progress line while a droplet is slow,
// the model's answer growing, then the whole reply. Usage: node streaming.mjs <base-url>
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const [base] = process.argv.slice(2);
const browser = await launch();
let passed = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(base);
  const message = page.getByLabel(/Message/);
  await message.fill("system overview");
  await message.press("Enter");
  const turn = page.locator("article.turn").nth(0);

  // 1. the progress line, while the reply has not come
  const progress = turn.locator(".primary .progress li");
  await progress.first().waitFor({ timeout: 15000 });
  assert.match(await progress.first().innerText(), /Asking the Visibility Deck/);
  assert.equal(await turn.locator(".primary table").count(), 0, "the progress line comes before the reply");
  passed++;

  // 2. the answer growing, before the reply replaces it
  const partial = turn.locator(".primary .partial");
  await partial.waitFor({ timeout: 15000 });
  assert.match(await partial.innerText(), /Nothing needs/);
  assert.equal(await turn.locator("details.trace").count(), 0, "streamed text shows before the reply");
  passed++;

  // 3. the whole reply: the summary in it, the progress line kept above it
  await turn.locator(".primary table").first().waitFor({ timeout: 15000 });
  const reply = await turn.locator(".primary .reply").innerText();
  assert.match(reply, /Nothing needs your attention: all six droplets are online\./);
  assert.match(reply, /37\.5%/);
  assert.equal(await turn.locator(".primary .partial").count(), 0, "the reply replaced the streamed text");
  assert.ok(await progress.first().isVisible());
  passed++;
} finally {
  await browser.close();
  console.log(`streaming: ${passed} passed, ${3 - passed} failed`);
}
