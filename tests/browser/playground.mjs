// Drives the playground like a steward: type, read the reply and its trace, switch to voice,
// finish a two-turn conversation. Usage: node playground.mjs <base-url> [screenshot.png]
import assert from "node:assert/strict";
import { launch } from "./launch.mjs";

const [base, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  await page.goto(base);
  const message = page.getByLabel(/Message/);
  const turns = page.locator("article.turn");

  // 1. a chat question: markdown table, the spoken version beside it, and the trace
  await message.fill("show me all droplets");
  await message.press("Enter");
  const first = turns.nth(0);
  await first.locator(".primary table").waitFor({ timeout: 15000 });
  assert.match(await first.locator(".primary").innerText(), /Visibility Deck/);
  assert.match(await first.locator(".secondary").innerText(), /There are seven droplets/);
  await first.locator("summary").click();
  const trace = await first.locator("details.trace").innerText();
  assert.match(trace, /all_droplets/);
  assert.match(trace, /GET \/health/);
  assert.match(trace, /fallback-data/);

  // 2. switch to voice and register a service by speaking: one question at a time, bare
  //    answers, a read-back, and the call only after "yes"
  await page.getByLabel("Voice").check();
  const say = async (text, index) => {
    await message.fill(text);
    await message.press("Enter");
    const turn = turns.nth(index);
    await turn.locator("details.trace").waitFor({ timeout: 15000 });
    return turn;
  };
  const asked = await say("register a new service", 1);
  assert.match(await asked.locator(".primary h2").innerText(), /voice/i);
  assert.match(await asked.locator(".primary").innerText(), /What should the service be called\?/);
  assert.doesNotMatch(await asked.locator(".primary").innerText(), /colon/, "nobody is asked to say punctuation");
  const named = await say("Playwright", 2);
  assert.match(await named.locator(".primary").innerText(), /what numeric id should Playwright have/);
  const readBack = await say("forty two", 3);
  assert.match(await readBack.locator(".primary").innerText(), /register Playwright with id 42\. Shall I go ahead\?/);
  await readBack.locator("summary").click();
  assert.match(await readBack.locator("details.trace").innerText(), /waiting for yes or no/);
  assert.doesNotMatch(await readBack.locator("details.trace").innerText(), /POST \/register/, "nothing sent yet");

  const third = await say("yes", 4);
  const spoken = await third.locator(".primary .reply").innerText();
  assert.match(spoken, /Playwright/);
  assert.doesNotMatch(spoken, /[*#`|]/, "voice replies are plain speech");
  assert.match(await third.locator(".secondary").innerText(), /POST \/register/);
  // keyboard use: after a reply the message box has the focus again
  assert.equal(await page.evaluate(() => document.activeElement.id), "message");
  await third.locator("summary").click();
  assert.match(await third.locator("details.trace").innerText(), /resumed/);
  assert.match(await third.locator("details.trace").innerText(), /confirmed and sent/);
  assert.match(await third.locator("details.trace").innerText(), /read as yes/, "how the answer was read");

  // a name that is markdown is shown as text in the chat rendering, never as a link
  const evil = await say("register name:[x](https://evil.example) id:5", 5);
  assert.match(await evil.locator(".secondary").innerText(), /\[x\]\(https:\/\/evil\.example\)/);
  assert.equal(await evil.locator('.secondary a[href*="evil"]').count(), 0, "no live link from a user's words");

  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log("playground: 3 passed, 0 failed");
} finally {
  await browser.close();
}
