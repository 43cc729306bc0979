// Positions and channel patterns: pure functions, no server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparePositions, isPosition } from '../index.js';
import { channelMatcher } from '../lib/positions.js';

test('positions are two runs of digits joined by a dash', () => {
  const good = ['0-0', '1733600000000-42', '18446744073709551615-18446744073709551615'];
  const bad = ['latest', '1-', '-1', '1-2-3', ' 1-2', '1.5-2', 12, null, undefined];
  for (const p of good) assert.ok(isPosition(p), p);
  for (const p of bad) assert.ok(!isPosition(p), String(p));
});

test('positions order as pairs of unbounded integers', () => {
  const ordered = [
    '0-0',
    '0-1',
    '9-99',
    '10-0',
    '1733600000000-9',
    '1733600000000-10',
    '9007199254740993-0', // 2^53 + 1: a Number would round it to 2^53
    '9007199254740993-1',
    '18446744073709551616-0',
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const order = Math.sign(comparePositions(ordered[i], ordered[j]));
      assert.equal(order, Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
    }
  }
  assert.equal(comparePositions('9007199254740992-0', '9007199254740993-0'), -1);
  assert.equal(comparePositions('007-1', '7-01'), 0, 'leading zeros do not count');
});

test('channel patterns match whole names, * any run of characters', () => {
  const match = channelMatcher(['orders-*', 'private-*-feed', 'exact.name']);
  for (const yes of ['orders-1', 'orders-', 'private-a-b-feed', 'exact.name']) assert.ok(match(yes), yes);
  for (const no of ['my-orders-1', 'private-a-feed-x', 'exactxname', 'Orders-1']) assert.ok(!match(no), no);
  assert.equal(channelMatcher(undefined), null);
  assert.ok(channelMatcher('*')('anything'));
});
