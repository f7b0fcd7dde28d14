import ContactdJSON
import Foundation

extension JSONValue {
    /// This value decoded as `type` (a method's typed result); `bad_response` naming `method` if
    /// it does not fit.
    func decoded<T: Decodable>(as type: T.Type, method: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(jsonBytes))
        } catch {
            throw ContactdClientError.badResponse("\(method) result does not match \(type): \(error)")
        }
    }
}
