// HTTP-date (RFC 9110 §5.6.7): the three formats a recipient must accept, and nothing else.
import t from 'tap';
import { parseHttpDate } from '../../../src/http/http-date.js';

const NOW = Date.UTC(2024, 0, 10, 12, 0, 0);
const NOV6 = Date.UTC(1994, 10, 6, 8, 49, 37);

t.test('http-date - IMF-fixdate, rfc850-date and asctime-date name the same instant', async (t) => {
  t.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW), NOV6, 'IMF-fixdate');
  t.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW), NOV6, 'rfc850-date');
  t.equal(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW), NOV6, 'asctime-date, one-digit day padded with a space');
  t.equal(parseHttpDate('Sun Nov 16 08:49:37 1994', NOW), Date.UTC(1994, 10, 16, 8, 49, 37), 'asctime-date, two-digit day');
  t.equal(parseHttpDate('Thu, 01 Jan 1970 00:00:00 GMT', NOW), 0);
  t.equal(parseHttpDate('Fri, 31 Dec 9999 23:59:59 GMT', NOW), Date.UTC(9999, 11, 31, 23, 59, 59));
});

t.test('http-date - rfc850 two-digit years: more than 50 years ahead means the century before (§5.6.7)', async (t) => {
  t.equal(parseHttpDate('Thursday, 01-Jan-30 00:00:00 GMT', NOW), Date.UTC(2030, 0, 1), '6 years ahead: 2030');
  t.equal(parseHttpDate('Monday, 01-Jan-74 00:00:00 GMT', NOW), Date.UTC(2074, 0, 1), '50 years ahead: still 2074');
  t.equal(parseHttpDate('Monday, 01-Jan-80 00:00:00 GMT', NOW), Date.UTC(1980, 0, 1), '56 years ahead: 1980');
});

t.test('http-date - anything else is not a date', async (t) => {
  const bad = [
    ['', 'empty'],
    ['0', 'zero'],
    ['-1', 'a number'],
    ['Thu, 01-Dec-2094 16:00:00 GMT', 'IMF with dashes'],
    ['Thu, 01/Dec/2094 16:00:00 GMT', 'IMF with slashes'],
    ['Thu, 01 Dec 2094 16.00.00 GMT', 'dots between the time fields'],
    ['Thu 01 Dec 2094 16:00:00 GMT', 'no comma'],
    ['Thu, 01 Dec 2094 6:00:00 GMT', 'a one-digit hour'],
    ['Thu, 01 Dec 2094 16:0:00 GMT', 'a one-digit minute'],
    ['Thu, 1 Dec 2094 16:00:00 GMT', 'a one-digit day'],
    ['Thu,  01 Dec 2094 16:00:00 GMT', 'two spaces after the comma'],
    ['Thu, 01  Dec 2094 16:00:00 GMT', 'two spaces before the month'],
    ['Thu, 01 Dec 2094  16:00:00 GMT', 'two spaces before the time'],
    ['Thu, 01 Dec 2094 16:00:00  GMT', 'two spaces before GMT'],
    [' Thu, 01 Dec 2094 16:00:00 GMT', 'a leading space (field values arrive trimmed)'],
    ['Thu, 01 Dec 2094 16:00:00 UTC', 'UTC for GMT'],
    ['Thu, 01 Dec 2094 16:00:00 +0000', 'a numeric zone'],
    ['Thu, 01 Dec 2094 16:00:00', 'no zone'],
    ['thu, 01 dec 2094 16:00:00 gmt', 'lower case (the names are case-sensitive)'],
    ['Thu, 01 December 2094 16:00:00 GMT', 'a full month name'],
    ['Thx, 01 Dec 2094 16:00:00 GMT', 'an unknown day name'],
    ['Thu, 01 Dec 94 16:00:00 GMT', 'a two-digit year in IMF-fixdate'],
    ['Thu, 32 Dec 2094 16:00:00 GMT', 'day 32'],
    ['Thu, 31 Nov 2094 16:00:00 GMT', 'November 31st'],
    ['Thu, 29 Feb 2023 16:00:00 GMT', 'February 29th of a common year'],
    ['Thu, 01 Dec 2094 24:00:00 GMT', 'hour 24'],
    ['Thu, 01 Dec 2094 16:60:00 GMT', 'minute 60'],
    ['Thu, 01 Dec 2094 16:00:61 GMT', 'second 61'],
    ['2094-12-01T16:00:00Z', 'ISO 8601'],
    ['Thu Dec 01 2094 16:00:00 GMT+0000', 'JavaScript\'s Date#toString'],
    ['Thursday, 01-Dec-2094 16:00:00 GMT', 'rfc850 with a four-digit year'],
    ['Thu, 01-Dec-94 16:00:00 GMT', 'rfc850 with a short day name'],
    ['Thu Dec 1 16:00:00 2094', 'asctime with an unpadded one-digit day'],
    ['Thu, 01 Dec 2094 16:00:00 GMT, Fri, 02 Dec 2094 16:00:00 GMT', 'two dates (two Expires lines combined)'],
  ] as const;
  for (const [value, what] of bad) t.equal(parseHttpDate(value, NOW), undefined, `${what}: ${JSON.stringify(value)}`);
});

t.test('http-date - a leap second and a February 29th of a leap year are dates', async (t) => {
  t.equal(parseHttpDate('Sat, 31 Dec 2016 23:59:60 GMT', NOW), Date.UTC(2017, 0, 1, 0, 0, 0), 'second 60 (RFC 5322 allows the leap second)');
  t.equal(parseHttpDate('Thu, 29 Feb 2024 00:00:00 GMT', NOW), Date.UTC(2024, 1, 29));
});
