import Foundation
import Hummingbird
import NIOCore

/// Renders every error as `{"error":"..."}` with its status: unknown routes (404),
/// bodies that are too large (413), bad input (400), and anything unexpected (500,
/// which no client input should reach).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            var response = Response.jsonError(error.status, error.body ?? error.status.reasonPhrase)
            for field in error.headers { response.headers.append(field) }
            return response
        } catch is NIOTooManyBytesError {
            return Response.jsonError(.contentTooLarge, "request body is larger than 64 KiB")
        } catch let error as any HTTPResponseError {
            return Response.jsonError(error.status, error.status.reasonPhrase)
        } catch {
            context.logger.error("unexpected error: \(error)")
            return Response.jsonError(.internalServerError, "internal error")
        }
    }
}

extension Response {
    /// A JSON response from bytes already encoded.
    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// `{"error":"message"}`.
    static func jsonError(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var writer = [UInt8]("{\"error\":".utf8)
        writer += jsonString(message)
        writer.append(UInt8(ascii: "}"))
        return json(writer, status: status)
    }

    static func jsonString(_ text: String) -> [UInt8] {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return [UInt8](data)
    }
}

/// A client error with a message for the JSON body.
func badRequest(_ message: String) -> HTTPError {
    HTTPError(.badRequest, message: message)
}
