// The playground tells a steward when an edit did not go live. Usage:
//   node stale.mjs <base-url> broken   (the files have a problem: the banner shows it, located,
//                                       and the old version still answers)
//   node stale.mjs <base-url> fixed    (a later reload succeeded: no banner; a message nobody
//                                       understands shows in the panel of missed messages)
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const [base, expect] = process.argv.slice(2);
const browser = await launch();
let passed = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(base);
  const banner = page.getByRole("alert").filter({ hasText: "Your latest edit is not live" });
  if (expect === "broken") {
    await banner.waitFor({ timeout: 10000 });
    const text = await banner.innerText();
    assert.match(text, /version 1 \(live since/);
    assert.match(text, /templates\/goodbye\/chat\.md\.j2:\d+:\d+: error\[E_TEMPLATE_SYNTAX\]/);
    passed++;
    // the running version keeps answering meanwhile
    const message = page.getByLabel(/Message/);
    await message.fill("thanks, bye");
    await message.press("Enter");
    const turn = page.locator("article.turn").nth(0);
    await turn.locator("details.trace").waitFor({ timeout: 15000 });
    assert.match(await turn.locator(".primary").innerText(), /welcome/i);
    assert.ok(await banner.isVisible(), "the banner stays until the files load");
    passed++;
  } else {
    // give the first status check time to come back, then make sure nothing is shown
    await page.waitForResponse((r) => r.url().endsWith("/api/playground/config"), { timeout: 10000 });
    await page.waitForTimeout(300);
    assert.equal(await banner.count(), 0, "no banner once the files load");
    passed++;
    // a message nobody understands shows up in the development panel of missed messages
    const message = page.getByLabel(/Message/);
    await message.fill("blorp zzkx quux");
    await message.press("Enter");
    await page.locator("article.turn").nth(0).locator("details.trace").waitFor({ timeout: 15000 });
    const missed = page.locator("details#missed");
    await missed.locator("summary").click();
    await missed.locator("tbody tr").first().waitFor({ timeout: 10000 });
    const row = await missed.locator("tbody tr").first().innerText();
    assert.match(row, /blorp zzkx quux/);
    assert.match(row, /fallback/);
    passed++;
  }
  console.log(`stale ${expect}: ${passed} passed, 0 failed`);
} finally {
  await browser.close();
}
