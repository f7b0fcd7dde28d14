import Foundation

/// The `Retry-After` header (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
///
/// The date forms are parsed by hand (IMF-fixdate, and the obsolete RFC 850 and asctime forms a
/// recipient must also accept): Foundation's date formatters are locale-driven and costly to make,
/// and this runs once per 429 or 503.
package enum RetryAfter {
    /// Longest hold a `Retry-After` can ask for, in seconds. A larger value (or a date further
    /// ahead) is taken as this: an API that says "come back tomorrow" is more likely misconfigured
    /// than meant, and one call an hour costs nothing. docs/caching.md documents it.
    package static let maximumSeconds: Double = 3600

    /// Seconds to wait from `now`, clamped to `0...maximumSeconds`; `nil` when absent or junk.
    package static func seconds(_ value: String?, now: Date = Date()) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Delta-seconds; too many digits for an Int is far past the maximum anyway.
            return min(Double(value) ?? maximumSeconds, maximumSeconds)
        }
        guard let date = httpDate(value) else { return nil }
        return min(max(0, date.timeIntervalSince(now)), maximumSeconds)
    }

    /// The instant an HTTP-date names, or `nil` if `text` is not one.
    package static func httpDate(_ text: String) -> Date? {
        // Split on spaces, commas, dashes and colons: every form becomes a list of fields.
        let fields = text.split(whereSeparator: { " ,-:".contains($0) }).map(String.init)
        let parts: (day: String, month: String, year: String, hour: String, minute: String, second: String)
        switch fields.count {
        case 8 where fields[7] == "GMT":
            // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" or RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT".
            parts = (fields[1], fields[2], fields[3], fields[4], fields[5], fields[6])
        case 7:
            // asctime "Sun Nov  6 08:49:37 1994".
            parts = (fields[2], fields[1], fields[6], fields[3], fields[4], fields[5])
        default:
            return nil
        }
        guard let month = months.firstIndex(of: parts.month), var year = Int(parts.year),
            let day = Int(parts.day), let hour = Int(parts.hour), let minute = Int(parts.minute),
            let second = Int(parts.second), (1...31).contains(day), (0...23).contains(hour),
            (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        // RFC 850's two-digit year: RFC 9110 says a year more than 50 years ahead is in the past.
        if parts.year.count == 2 { year += year < 70 ? 2000 : 1900 }
        let days = daysFromCivil(year: year, month: month + 1, day: day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3600 + minute * 60 + second))
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
