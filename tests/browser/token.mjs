// The playground against a server that wants a Registry-signed token: without one the page says
// what to do; with one pasted in the Token field the turn is answered, and the token is kept in
// the tab across a reload. Usage: node token.mjs <base-url> <token>
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const [base, token] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.goto(base);
  const message = page.getByLabel(/Message/);
  const turns = page.locator("article.turn");

  // 1. no token: a clear alert, and the Token field gets the focus
  await message.fill("help");
  await message.press("Enter");
  const alert = turns.nth(0).getByRole("alert");
  await alert.waitFor({ timeout: 15000 });
  assert.match(await alert.innerText(), /token signed by the Registry/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "token");

  // 2. with the token: answered
  await page.getByLabel("Token").fill(token);
  await page.getByLabel("Token").dispatchEvent("change");
  await message.fill("help");
  await message.press("Enter");
  await turns.nth(1).locator("details.trace").waitFor({ timeout: 15000 });
  assert.match(await turns.nth(1).locator(".primary").innerText(), /Chat Orchestrator/);

  // 3. kept in this tab (sessionStorage) across a reload, never in the URL
  await page.reload();
  assert.equal(await page.getByLabel("Token").inputValue(), token);
  assert.ok(!page.url().includes(token));
  console.log("token: 3 passed, 0 failed");
} finally {
  await browser.close();
}
