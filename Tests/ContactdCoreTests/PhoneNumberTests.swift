import ContactdCore
import ContactdTestSupport
import Testing

@Suite struct PhoneNumberTests {
    @Test(arguments: [
        ("+14155551234", "+14155551234"),
        ("+1 415 555 1234", "+14155551234"),
        ("+1 (415) 555-1234", "+14155551234"),
        ("+1.415.555.1234", "+14155551234"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+12", "+12"),
        ("+123456789012345", "+123456789012345"),
    ])
    func normalisesToE164(input: String, expected: String) {
        #expect(PhoneNumber(input)?.e164 == expected)
    }

    @Test(arguments: [
        "", "+", "+1", "14155551234", "+0123456", "+1234567890123456", "++14155551234", "+1415555123a",
        "+1 415 555 1234 ext 5", "+1_415", "+１４１５５５５１２３４", "1+4155551234", "+1\t4155551234",
    ])
    func rejectsNonE164(input: String) {
        #expect(PhoneNumber(input) == nil)
    }
}

@Suite struct ContactIDTests {
    @Test func acceptsUpTo128Bytes() {
        #expect(ContactID(String(repeating: "a", count: 128)) != nil)
        #expect(ContactID("c1d2e3f4-5678-9abc-def0-123456789abc") != nil)
    }

    @Test(arguments: ["", String(repeating: "a", count: 129), "has space", "tab\there", "nl\n", "\u{7F}"])
    func rejectsMalformed(input: String) {
        #expect(ContactID(input) == nil)
    }

    /// The already-normalised shortcut and the general path agree: 20,000 random strings over
    /// `+0-9 -()x`, checked against the rule written out plainly.
    @Test func shortcutAgreesWithTheRule() {
        var random = SplitMix64(seed: 7)
        let alphabet = Array("+0123456789 -().x")
        for _ in 0..<20_000 {
            let length = Int.random(in: 0..<19, using: &random)
            var text = String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] })
            if Bool.random(using: &random) { text = "+" + text.filter(\.isNumber) }
            let kept = text.filter { !" -.()".contains($0) }
            let digits = kept.dropFirst()
            let valid =
                kept.first == "+" && (2...15).contains(digits.count) && digits.allSatisfy(\.isASCII)
                && digits.allSatisfy(\.isNumber) && digits.first != "0"
            #expect(PhoneNumber(text)?.e164 == (valid ? kept : nil), "\(text)")
        }
    }
}
