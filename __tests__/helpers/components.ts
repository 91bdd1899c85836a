import fs from 'node:fs';

/**
 * Where a real component (Chromium, Redis, nginx) is missing, its tests are skipped with the reason in
 * their name — unless CI requires it (`REQUIRE_BROWSER=1`), and then the missing component fails the
 * run. `npm run test:unit` (`TEST_SCOPE=unit`) leaves every such test out by design, found or not.
 */
export function requireComponent(
  name: string,
  found: boolean,
  requiredBy: string,
): { available: boolean; describe: jest.Describe; label: string } {
  if (process.env.TEST_SCOPE === 'unit') {
    return { available: false, describe: describe.skip, label: ` (left out of test:unit: needs ${name})` };
  }
  const required = process.env[requiredBy] === '1';
  if (!found && required)
    throw new Error(`${name} is required (${requiredBy}=1) but was not found on this machine`);
  return {
    available: found,
    describe: found ? describe : describe.skip,
    label: found ? '' : ` (skipped: ${name} not found; set ${requiredBy}=1 to require it)`,
  };
}

export function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p): p is string => typeof p === 'string' && fs.existsSync(p));
}
