import ContactdCore
import Testing

@Suite struct ContactTests {
    @Test func keepsTheAPIsBytesWithoutWhitespace() throws {
        let body =
            #"{ "id" : "abc", "phone_number": "+1 415 555 1234", "score": 1.50, "big": 1E+3, "s": "a  b\" }", "n": null }"#
        let contact = try APIContact(apiBody: Array(body.utf8))
        #expect(
            String(decoding: contact.json, as: UTF8.self)
                == #"{"id":"abc","phone_number":"+1 415 555 1234","score":1.50,"big":1E+3,"s":"a  b\" }","n":null}"#
        )
        #expect(contact.id.rawValue == "abc")
        #expect(contact.phoneNumber?.e164 == "+14155551234")
    }

    @Test(arguments: [
        "", "[]", "\"x\"", "{}", #"{"id": 5}"#, #"{"id": ""}"#, #"{"id": "a"} x"#, "<html>", #"{"id":"a""#,
    ])
    func rejectsBodiesThatAreNotContacts(body: String) {
        #expect(throws: APIContact.InvalidContact.self) { try APIContact(apiBody: Array(body.utf8)) }
    }

    @Test func contactWithoutPhoneIsReachableByIDOnly() throws {
        let contact = try APIContact(apiBody: Array(#"{"id":"x1","phone_number":"n/a"}"#.utf8))
        #expect(contact.phoneNumber == nil)
        #expect(contact.ownKeys == [.id(ContactID("x1")!)])
    }
}
