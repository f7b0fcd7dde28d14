import ContactdJSON
import Testing

@Suite struct JSONParserTests {
    @Test func keepsNumberSpellingAndMemberOrder() throws {
        let value = try JSONParser.parse(Array(#" {"b": 1.50, "a": -0.0e+10, "c": [true, false, null, "x"]} "#.utf8))
        #expect(value.objectValue?.keys == ["b", "a", "c"])
        #expect(value["b"] == .number("1.50"))
        #expect(value.jsonString == #"{"b":1.50,"a":-0.0e+10,"c":[true,false,null,"x"]}"#)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        let value = try JSONParser.parse(Array(#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#.utf8))
        #expect(value == .string("a\"b\\c/d\né😀"))
    }

    @Test func writerEscapesWhatTheParserReads() throws {
        let original = JSONValue.string("quote \" backslash \\ newline \n tab \t bell \u{07} é")
        #expect(try JSONParser.parse(original.jsonBytes) == original)
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1", "tru",
        "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"", "\"a\u{01}b\"", "1 2", "[1] x",
        "NaN", "Infinity", "'a'",
    ])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8InStrings() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func boundsNestingDepthInsteadOfOverflowingTheStack() throws {
        let deep = Array(String(repeating: "[", count: 100_000).utf8)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONParser.parse(Array(ok.utf8))
    }

    @Test func removingWhitespaceLeavesStringsAlone() throws {
        let text = "{ \"a b\" : [ 1 , \"c \\\" d\" ] }\n"
        _ = try JSONParser.parse(Array(text.utf8))
        #expect(
            String(decoding: JSONParser.removingWhitespace(Array(text.utf8)), as: UTF8.self)
                == "{\"a b\":[1,\"c \\\" d\"]}"
        )
    }
}
