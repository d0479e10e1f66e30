// The resume variable: found where the document passes one, added where it
// does not, and nothing touched in operations that cannot resume.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse, print } from 'graphql';
import { createHeraldClient, operationKind, prepareOperation } from '@heraldhq/client';

const norm = (q) => print(parse(q));

test('a subscription that passes after in a variable is sent as it is', () => {
  const q = 'subscription S($r: ID!, $from: String) { messagePosted(roomId: $r, after: $from) { id } }';
  assert.deepEqual(prepareOperation(q), { query: q, operation: 'subscription', cursorVariable: 'from' });
});

test('a subscription without after gets $after: String and after: $after', () => {
  const p = prepareOperation('subscription ($r: ID!) { messagePosted(roomId: $r) { id text } }');
  assert.equal(p.cursorVariable, 'after');
  assert.equal(p.query, norm('subscription ($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { id text } }'));
  const none = prepareOperation('subscription { roomCreated { id } }');
  assert.equal(none.query, norm('subscription ($after: String) { roomCreated(after: $after) { id } }'));
});

test('a variable named after that is used elsewhere is left alone', () => {
  const p = prepareOperation('subscription ($after: ID!) { messagePosted(roomId: $after) { id } }');
  assert.equal(p.cursorVariable, 'heraldAfter');
  assert.equal(p.query, norm('subscription ($after: ID!, $heraldAfter: String) { messagePosted(roomId: $after, after: $heraldAfter) { id } }'));
});

test('a root field selected twice (merged into one by GraphQL) gets the argument on each selection', () => {
  const p = prepareOperation('subscription { ...F roomCreated { id } } fragment F on Subscription { roomCreated { name } }');
  assert.equal(p.cursorVariable, 'after');
  assert.equal(p.query, norm('subscription ($after: String) { ...F roomCreated(after: $after) { id } } fragment F on Subscription { roomCreated(after: $after) { name } }'));
});

test('a literal cursor moves into the variable, with its value', () => {
  const p = prepareOperation('subscription { messagePosted(roomId: "r1", after: "abc") { id } }');
  assert.equal(p.cursorVariable, 'after');
  assert.equal(p.literalCursor, 'abc');
  assert.equal(p.query, norm('subscription ($after: String) { messagePosted(roomId: "r1", after: $after) { id } }'));
});

test('a subscription whose field sits in a root fragment gets the variable where the field is', () => {
  for (const [q, want] of [
    ['subscription { ... on Subscription { roomCreated { id } } }',
      'subscription ($after: String) { ... on Subscription { roomCreated(after: $after) { id } } }'],
    ['subscription { ...F } fragment F on Subscription { roomCreated { id } }',
      'subscription ($after: String) { ...F } fragment F on Subscription { roomCreated(after: $after) { id } }'],
    // Every operation that spreads the fragment declares the variable (the
    // server validates them all), under a name none of them uses.
    ['subscription A($after: ID) { ...G } subscription B { ...G } fragment G on Subscription { ...F } fragment F on Subscription { roomCreated { id } }',
      'subscription A($after: ID, $heraldAfter: String) { ...G } subscription B($heraldAfter: String) { ...G } fragment G on Subscription { ...F } fragment F on Subscription { roomCreated(after: $heraldAfter) { id } }'],
  ]) {
    const p = prepareOperation(q, q.startsWith('subscription A') ? 'B' : undefined);
    assert.equal(p.query, norm(want), q);
    assert.ok(p.cursorVariable, q);
  }
  const given = 'subscription ($c: String) { ...F } fragment F on Subscription { roomCreated(after: $c) { id } }';
  assert.deepEqual(prepareOperation(given), { query: given, operation: 'subscription', cursorVariable: 'c' });
});

test('queries, mutations and subscriptions of several root fields cannot resume and are not changed', () => {
  for (const [q, operation] of [
    ['{ viewer { name } }', 'query'],
    ['mutation { createRoom(name: "x") { id } }', 'mutation'],
    ['subscription { ...F roomCreated { id } } fragment F on Subscription { other: roomCreated { name } }', 'subscription'],
  ]) {
    assert.deepEqual(prepareOperation(q), { query: q, operation, cursorVariable: null }, q);
  }
});

test('an operation\'s kind is the kind of the one operationName selects, not of the document\'s first', () => {
  const text = 'query Q { viewer { name } } mutation M { createRoom(name: "x") { id } } subscription S { roomCreated { id } }';
  for (const doc of [text, parse(text)]) {
    assert.equal(operationKind(doc, 'Q'), 'query');
    assert.equal(operationKind(doc, 'M'), 'mutation');
    assert.equal(operationKind(doc, 'S'), 'subscription');
    assert.equal(prepareOperation(doc, 'M').operation, 'mutation');
    assert.equal(prepareOperation(doc, 'S').operation, 'subscription');
    assert.equal(operationKind(doc, 'Nope'), null, 'no operation of that name');
    assert.equal(operationKind(doc), null, 'several operations and no name');
    assert.equal(prepareOperation(doc).operation, null);
  }
  assert.equal(operationKind('{ viewer { name } }'), 'query', 'the only operation, shorthand');
  assert.equal(operationKind('mutation {'), null, 'a document that does not parse');
});

test('the operation named operationName is the one prepared; parsed documents are printed', () => {
  const doc = parse('query Q { viewer { name } } subscription S { roomCreated { id } }');
  const p = prepareOperation(doc, 'S');
  assert.equal(p.cursorVariable, 'after');
  assert.equal(p.query, norm('query Q { viewer { name } } subscription S($after: String) { roomCreated(after: $after) { id } }'));
  assert.equal(prepareOperation(doc, 'Q').cursorVariable, null);
  assert.equal(prepareOperation(doc).cursorVariable, null, 'two operations and no name: nothing to pick');
});

test('subscribeAfter refuses an operation it cannot pass the cursor to, rather than start from now', async () => {
  // Nothing connects: the client is lazy and the call fails before subscribing.
  const client = createHeraldClient({ url: 'ws://127.0.0.1:9/graphql' });
  for (const query of ['subscription { ...F roomCreated { id } } fragment F on Subscription { other: roomCreated { name } }', '{ viewer { name } }']) {
    let returned = false;
    const failed = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no error within 2 s: ${query}`)), 2000);
      // Through the sink, as every other failure: subscribeAfter does not throw.
      client.subscribeAfter('abc', { query }, {
        next: () => {}, complete: () => { clearTimeout(timer); reject(new Error(`completed: ${query}`)); },
        error: (e) => { clearTimeout(timer); resolve({ error: e, returned }); },
      });
      returned = true;
    });
    const { error, returned: after } = await failed;
    assert.ok(after, `the error comes after subscribeAfter() has returned: ${query}`);
    assert.ok(error instanceof TypeError, query);
    assert.match(error.message, /cursor was given/, query);
  }
});
