import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /` and its two assets: the live page (`Page/index.html`, `app.js`, `app.css`,
/// compiled into the binary). The page holds no data: it fetches `/stats/history` and
/// `/stats/capture` and follows `/stats/stream`, so it is served without a token even
/// when the data routes need one, and asks the user for the token itself.
///
/// ```swift
/// LivePage<TrafficRequestContext>(authRequired: false).add(to: router)
/// ```
struct LivePage<Context: RequestContext> {
    /// One file of the page, ready to send.
    struct Asset: Sendable {
        var path: String
        var contentType: String
        var body: ByteBuffer
        var etag: String
    }

    static var pagePath: String { "/" }
    static var scriptPath: String { "/assets/app.js" }
    static var stylePath: String { "/assets/app.css" }
    /// The paths the page is served from (open even with `--auth-token-file`).
    static var paths: Set<String> { [pagePath, scriptPath, stylePath] }

    let assets: [Asset]

    init(authRequired: Bool) {
        let script = Self.asset(Self.scriptPath, "text/javascript; charset=utf-8", PackageResources.app_js)
        let style = Self.asset(Self.stylePath, "text/css; charset=utf-8", PackageResources.app_css)
        // The assets' hashes key their URLs, so a new binary's page never runs with a cached
        // script of the old one (and the open page does not reveal the version).
        let html = String(decoding: PackageResources.index_html, as: UTF8.self)
            .replacingOccurrences(of: "{{auth}}", with: authRequired ? "required" : "none")
            .replacingOccurrences(of: "{{js}}", with: script.etag.filter { $0 != "\"" })
            .replacingOccurrences(of: "{{css}}", with: style.etag.filter { $0 != "\"" })
        assets = [Self.asset(Self.pagePath, "text/html; charset=utf-8", Array(html.utf8)), script, style]
    }

    func add(to router: Router<Context>) {
        for asset in assets {
            let respond: @Sendable (Request, Context) async throws -> Response = { request, _ in
                var headers: HTTPFields = [
                    .contentType: asset.contentType,
                    .eTag: asset.etag,
                    .cacheControl: "no-cache",
                    PageHeaders.contentTypeOptions: "nosniff",
                ]
                if asset.path == Self.pagePath {
                    headers[.contentSecurityPolicy] =
                        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                    headers[PageHeaders.referrerPolicy] = "no-referrer"
                }
                if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: {
                    $0.trimmingCharacters(in: .whitespaces) == asset.etag
                }) {
                    return Response(status: .notModified, headers: headers)
                }
                headers[.contentLength] = String(asset.body.readableBytes)
                let body: ResponseBody = request.method == .head ? .init() : .init(byteBuffer: asset.body)
                return Response(status: .ok, headers: headers, body: body)
            }
            router.get(RouterPath(asset.path), use: respond)
            router.head(RouterPath(asset.path), use: respond)
        }
    }

    static func asset(_ path: String, _ contentType: String, _ bytes: [UInt8]) -> Asset {
        // FNV-1a over the content: a strong validator that changes with the file.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return Asset(
            path: path, contentType: contentType, body: ByteBuffer(bytes: bytes),
            etag: "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\"")
    }
}

/// Header names swift-http-types does not predefine (literal, valid names: the
/// initialiser cannot fail on them).
enum PageHeaders {
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
}
