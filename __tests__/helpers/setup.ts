// Any unhandled rejection during a test fails that test: the library promises never to leak one.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);

afterEach(() => {
  if (unhandled.length > 0) {
    const reasons = unhandled.splice(0);
    throw new Error(`unhandled rejection during the test: ${reasons.map(String).join('; ')}`);
  }
});

afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
