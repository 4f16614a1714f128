import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /` and its two assets: the live page (`Page/index.html`, `app.js`, `app.css`,
/// compiled into the binary). The page holds no data: it fetches `/stats/history` and
/// `/stats/capture` and follows `/stats/stream`, so it is served without a token even
/// when the data routes need one, and asks the user for the token itself.
///
/// ```swift
/// LivePage<TrafficRequestContext>(version: "1.0.0", authRequired: false).add(to: router)
/// ```
struct LivePage<Context: RequestContext> {
    /// One file of the page, ready to send.
    struct Asset: Sendable {
        var path: String
        var contentType: String
        var body: ByteBuffer
        var etag: String
    }

    /// The paths the page is served from (open even with `--auth-token-file`).
    static var paths: Set<String> { ["/", "/assets/app.js", "/assets/app.css"] }

    let assets: [Asset]

    init(version: String, authRequired: Bool) {
        // The version keys the asset URLs, so an upgraded binary's page never mixes with a
        // cached script of the old one.
        let html = String(decoding: PackageResources.index_html, as: UTF8.self)
            .replacingOccurrences(of: "{{auth}}", with: authRequired ? "required" : "none")
            .replacingOccurrences(of: "{{version}}", with: Self.urlSafe(version))
        assets = [
            Self.asset("/", "text/html; charset=utf-8", Array(html.utf8)),
            Self.asset("/assets/app.js", "text/javascript; charset=utf-8", PackageResources.app_js),
            Self.asset("/assets/app.css", "text/css; charset=utf-8", PackageResources.app_css),
        ]
    }

    func add(to router: Router<Context>) {
        for asset in assets {
            let respond: @Sendable (Request, Context) async throws -> Response = { request, _ in
                var headers: HTTPFields = [
                    .contentType: asset.contentType,
                    .eTag: asset.etag,
                    .cacheControl: "no-cache",
                    .xContentTypeOptions: "nosniff",
                ]
                if asset.path == "/" {
                    headers[.contentSecurityPolicy] =
                        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                    headers[.referrerPolicy] = "no-referrer"
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

    static func urlSafe(_ text: String) -> String {
        String(text.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-+".unicodeScalars.contains($0)) }.map(Character.init))
    }
}

extension HTTPField.Name {
    // Literal, valid field names: the initialiser cannot fail on them.
    static var xContentTypeOptions: Self { Self("X-Content-Type-Options")! }
    static var referrerPolicy: Self { Self("Referrer-Policy")! }
}
