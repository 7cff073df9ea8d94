// HTTP-date (RFC 9110 §5.6.7): the three formats a recipient must accept, parsed exactly.
// Date.parse is no judge of them: it reads one-digit hours, dashes, ISO 8601 and "0" as
// dates, where RFC 9111 §5.3 makes an Expires that is not an HTTP-date "already expired".

const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const LONG_DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const DAY_NAME = DAYS.join('|');
const MONTH = MONTHS.join('|');
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';

/** IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`. */
const IMF_FIXDATE = new RegExp(`^(?:${DAY_NAME}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`);
/** rfc850-date (obsolete): `Sunday, 06-Nov-94 08:49:37 GMT`. */
const RFC850_DATE = new RegExp(`^(?:${LONG_DAYS.join('|')}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`);
/** asctime-date (obsolete): `Sun Nov  6 08:49:37 1994`, a one-digit day after a space. */
const ASCTIME_DATE = new RegExp(`^(?:${DAY_NAME}) (${MONTH}) ((?:\\d| )\\d) ${TIME} (\\d{4})$`);

/** Epoch-ms of a calendar date and time, or undefined when a field is out of range (a day the
 *  month does not have, hour 24). Second 60 is the leap second the grammar allows. */
function utc(year: number, month: number, day: number, hour: number, minute: number, second: number): number | undefined {
  if (hour > 23 || minute > 59 || second > 60 || day < 1) return undefined;
  if (day > new Date(Date.UTC(year, month + 1, 0)).getUTCDate()) return undefined;
  const ms = Date.UTC(year, month, day, hour, minute, second);
  // Date.UTC maps years 0-99 to 1900-1999; the four-digit forms mean what they say.
  return year < 100 ? new Date(ms).setUTCFullYear(year) : ms;
}

/**
 * Epoch-ms of an HTTP-date (RFC 9110 §5.6.7), or undefined when the value is none of IMF-fixdate,
 * rfc850-date or asctime-date: names are case-sensitive, fields have their fixed widths, one
 * space separates them, and the zone is "GMT". The weekday is not checked against the date.
 * `now` places an rfc850-date's two-digit year: one more than 50 years ahead of it is the
 * most recent year in the past with those digits.
 */
export function parseHttpDate(value: string, now: number): number | undefined {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return utc(Number(m[3]), MONTHS.indexOf(m[2]!), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = ASCTIME_DATE.exec(value);
  if (m !== null) return utc(Number(m[6]), MONTHS.indexOf(m[1]!), Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  m = RFC850_DATE.exec(value);
  if (m === null) return undefined;
  const nowYear = new Date(now).getUTCFullYear();
  const month = MONTHS.indexOf(m[2]!);
  const at = (year: number) => utc(year, month, Number(m![1]), Number(m![4]), Number(m![5]), Number(m![6]));
  const year = nowYear - (nowYear % 100) + Number(m[3]);
  const candidate = at(year);
  if (candidate === undefined || candidate <= new Date(now).setUTCFullYear(nowYear + 50)) return candidate;
  return at(year - 100);
}

/** An HTTP-date in IMF-fixdate, the form every parser reads alike. */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString();
}
