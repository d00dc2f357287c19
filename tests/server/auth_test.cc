// The API token: SHA-256, the constant-time compare, the Bearer scheme, the
// token file, and the router with and without a token configured.
#include "cfrec/server/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "server/service_fixture.h"

namespace cfrec::server {
namespace {

using nlohmann::json;

std::string Hex(const Sha256Digest& digest) {
  std::string out;
  char buf[3];
  for (const uint8_t b : digest) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    out += buf;
  }
  return out;
}

TEST(Sha256, MatchesReferenceDigests) {
  // FIPS 180-2 appendix B, then lengths around the padding boundaries.
  EXPECT_EQ(Hex(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopn"
                       "opq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256(std::string(1'000'000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  const std::vector<std::pair<size_t, std::string>> lengths = {
      {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
      {1000,
       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"}};
  for (const auto& [n, hex] : lengths) {
    EXPECT_EQ(Hex(Sha256(std::string(n, 'a'))), hex) << n;
  }
}

TEST(ConstantTimeEquals, ComparesEveryByte) {
  const Sha256Digest a = Sha256("token");
  Sha256Digest b = a;
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  b.front() ^= 1;
  EXPECT_FALSE(ConstantTimeEquals(a, b));
  b = a;
  b.back() ^= 0x80;
  EXPECT_FALSE(ConstantTimeEquals(a, b));
}

constexpr char kToken[] = "tok-3f9a1c7e5b2d4680";

TEST(ApiToken, RejectsEmptyLongAndUnsendableTokens) {
  EXPECT_TRUE(ApiToken::Create("").status().IsInvalidArgument());
  EXPECT_TRUE(ApiToken::Create(std::string(ApiToken::kMaxBytes, 'x')).ok());
  EXPECT_TRUE(ApiToken::Create(std::string(ApiToken::kMaxBytes + 1, 'x'))
                  .status()
                  .IsInvalidArgument());
  const std::vector<std::string> unsendable = {"two words", "tab\there",
                                               "line\nbreak", "caf\xc3\xa9",
                                               std::string("nul\0x", 5)};
  for (const std::string& bad : unsendable) {
    const auto t = ApiToken::Create(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_TRUE(t.status().IsInvalidArgument());
    EXPECT_EQ(t.status().message().find(bad), std::string::npos);
  }
  EXPECT_TRUE(ApiToken::Create("A-Za-z0-9._~+/=!#$%&'*^`|").ok());
}

TEST(ApiToken, ChecksTheBearerScheme) {
  const auto token = ApiToken::Create(kToken);
  ASSERT_TRUE(token.ok());
  const std::string t = kToken;
  EXPECT_EQ(token->Check(""), AuthCheck::kMissing);
  EXPECT_EQ(token->Check("Basic " + t), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check(t), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check("Bearer"), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check("Bearer "), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check("Bearer" + t), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check("Bearer\t" + t), AuthCheck::kWrongScheme);
  EXPECT_EQ(token->Check("Bearer " + t), AuthCheck::kOk);
  EXPECT_EQ(token->Check("bearer " + t), AuthCheck::kOk);
  EXPECT_EQ(token->Check("BEARER   " + t), AuthCheck::kOk);
  EXPECT_EQ(token->Check("Bearer " + t + "x"), AuthCheck::kWrongToken);
  EXPECT_EQ(token->Check("Bearer " + t.substr(0, t.size() - 1)),
            AuthCheck::kWrongToken);
  EXPECT_EQ(token->Check("Bearer x" + t.substr(1)), AuthCheck::kWrongToken);
  EXPECT_EQ(token->Check("Bearer wrong"), AuthCheck::kWrongToken);
  EXPECT_EQ(token->Check("Bearer " + t + ", Bearer " + t),
            AuthCheck::kWrongToken);
  EXPECT_TRUE(token->Matches(t));
  EXPECT_FALSE(token->Matches(""));
  EXPECT_FALSE(token->Matches(t + '\0'));
}

class ApiTokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("cfrec_auth_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content,
                    mode_t mode) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ApiTokenFileTest, TrimsWhitespaceAndKeepsOnlyTheDigest) {
  const std::string path =
      Write("token", std::string("  ") + kToken + " \r\n\n", 0600);
  auto file = ReadApiTokenFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_TRUE(file->warning.empty()) << file->warning;
  EXPECT_TRUE(file->token.Matches(kToken));
  EXPECT_FALSE(file->token.Matches(std::string(kToken) + "\n"));
}

TEST_F(ApiTokenFileTest, WarnsWhenOthersCanReadIt) {
  for (const mode_t mode : {0644, 0640, 0604}) {
    const std::string path = Write("token", kToken, mode);
    auto file = ReadApiTokenFile(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_NE(file->warning.find(path), std::string::npos) << file->warning;
    char text[8];
    std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(file->warning.find(text), std::string::npos) << file->warning;
    EXPECT_EQ(file->warning.find(kToken), std::string::npos);
    std::filesystem::remove(path);
  }
  auto owner_only = ReadApiTokenFile(Write("t400", kToken, 0400));
  ASSERT_TRUE(owner_only.ok());
  EXPECT_TRUE(owner_only->warning.empty());
}

TEST_F(ApiTokenFileTest, RefusesMissingUnreadableEmptyAndBadFiles) {
  EXPECT_EQ(ReadApiTokenFile((dir_ / "absent").string()).status().code(),
            StatusCode::kIOError);
  // A directory opens but cannot be read, even by root.
  EXPECT_EQ(ReadApiTokenFile(dir_.string()).status().code(),
            StatusCode::kIOError);
  EXPECT_TRUE(
      ReadApiTokenFile(Write("empty", "", 0600)).status().IsInvalidArgument());
  EXPECT_TRUE(ReadApiTokenFile(Write("blank", " \n\t\n", 0600))
                  .status()
                  .IsInvalidArgument());
  EXPECT_TRUE(ReadApiTokenFile(Write("huge", std::string(5000, 'x'), 0600))
                  .status()
                  .IsInvalidArgument());
  const std::string secret = "two-part secret-value";
  const auto spaced = ReadApiTokenFile(Write("spaced", secret + "\n", 0600));
  ASSERT_TRUE(spaced.status().IsInvalidArgument());
  EXPECT_EQ(spaced.status().ToString().find("secret-value"), std::string::npos);
  EXPECT_EQ(spaced.status().ToString().find("two-part"), std::string::npos);
}

// ------------------------------------------------------------- the router

constexpr char kClick[] =
    R"({"type":"click","impression_id":"i1","user_id":"bob",)"
    R"("item_id":"N3","ts":1700000000000})";

class AuthTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    auto token = ApiToken::Create(kToken);
    ASSERT_TRUE(token.ok());
    context_.api_token = *token;
  }

  HttpResponse PostEvents(
      const std::string& authorization, const std::string& body = kClick,
      const std::string& content_type = "application/json") {
    HttpResponse r = Handle(
        context_, {"POST", "/v1/events", content_type, body, authorization});
    answers_.push_back(r);
    return r;
  }

  static std::string Challenge(const HttpResponse& r) {
    for (const auto& [name, value] : r.headers) {
      if (name == "WWW-Authenticate") return value;
    }
    return "";
  }

  std::string Unauthorized(const std::string& reason) {
    const std::string line =
        "cfrec_http_unauthorized_total{route=\"/v1/events\",reason=\"" +
        reason + "\"} ";
    const std::string text = metrics_.Expose();
    const size_t at = text.find(line);
    if (at == std::string::npos) return "absent";
    return text.substr(at + line.size(),
                       text.find('\n', at) - at - line.size());
  }

  std::vector<HttpResponse> answers_;
};

TEST_F(AuthTest, EventsNeedTheBearerToken) {
  const std::string t = kToken;
  struct Refused {
    std::string authorization;
    std::string challenge;
  };
  const std::string plain = "Bearer realm=\"cfrec\"";
  const std::string invalid = "Bearer realm=\"cfrec\", error=\"invalid_token\"";
  const std::vector<Refused> refused = {
      {"", plain},                                       // no header
      {"Basic " + t, plain},                             // wrong scheme
      {"Token " + t, plain},                             // wrong scheme
      {t, plain},                                        // no scheme
      {"Bearer wrong", invalid},                         // wrong token
      {"Bearer " + t + "x", invalid},                    // one byte more
      {"Bearer " + t.substr(0, t.size() - 1), invalid},  // one byte less
      {"Bearer " + t + ", Bearer " + t, invalid},        // repeated header
  };
  for (const Refused& c : refused) {
    const HttpResponse r = PostEvents(c.authorization);
    EXPECT_EQ(r.status, 401) << c.authorization;
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(ErrorCode(r), "unauthorized");
    EXPECT_EQ(r.route, "/v1/events");
    EXPECT_EQ(Challenge(r), c.challenge) << c.authorization;
  }
  EXPECT_TRUE(sink_.messages().empty());
  EXPECT_EQ(Unauthorized("missing"), "1");
  EXPECT_EQ(Unauthorized("wrong_scheme"), "3");
  EXPECT_EQ(Unauthorized("wrong_token"), "4");

  HttpResponse r = PostEvents("Bearer " + t);
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(Json(r).at("accepted"), 1);
  r = PostEvents("bearer  " + t);
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(sink_.messages().size(), 2u);
  EXPECT_EQ(Unauthorized("wrong_token"), "4");
}

TEST_F(AuthTest, TokenIsCheckedBeforeTheBody) {
  // An unauthenticated client learns nothing about validation.
  EXPECT_EQ(PostEvents("", "not json").status, 401);
  EXPECT_EQ(PostEvents("Bearer wrong", kClick, "text/plain").status, 401);
  EXPECT_EQ(PostEvents(std::string("Bearer ") + kToken, "not json").status,
            400);
  // A wrong method is still 405: the route exists, whoever asks.
  const HttpResponse r = Get("/v1/events");
  EXPECT_EQ(r.status, 405);
}

TEST_F(AuthTest, ReadsStayOpen) {
  EXPECT_EQ(Get("/v1/recommendations?user_id=alice&n=2").status, 200);
  EXPECT_EQ(
      Post("/v1/rank", R"({"user_id":"alice","items":["N1","N2"]})").status,
      200);
  EXPECT_EQ(Get("/v1/model").status, 200);
  EXPECT_EQ(Get("/metrics").status, 200);
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  EXPECT_EQ(Get("/v1/nothing").status, 404);
  for (const RouteInfo& route : Routes()) {
    EXPECT_EQ(route.changes_state, route.path == "/v1/events") << route.path;
  }
}

TEST_F(AuthTest, WithoutATokenEverythingIsOpen) {
  context_.api_token.reset();
  EXPECT_EQ(PostEvents("").status, 202);
  EXPECT_EQ(PostEvents("Bearer anything").status, 202);
  EXPECT_EQ(sink_.messages().size(), 2u);
  EXPECT_EQ(metrics_.Expose().find("cfrec_http_unauthorized_total"),
            std::string::npos);
}

TEST_F(AuthTest, RefusalCountersStartAtZero) {
  InitServiceMetrics(context_);
  EXPECT_EQ(Unauthorized("missing"), "0");
  EXPECT_EQ(Unauthorized("wrong_scheme"), "0");
  EXPECT_EQ(Unauthorized("wrong_token"), "0");
}

TEST_F(AuthTest, TheTokenAppearsInNoAnswerMetricOrLog) {
  const std::string t = kToken;
  ::testing::internal::CaptureStderr();
  PostEvents("Bearer " + t);
  PostEvents("Bearer " + t + "x");
  PostEvents("Bearer " + t.substr(1));
  PostEvents("Basic " + t);
  PostEvents(t);
  PostEvents("Bearer " + t, "{\"bad\":1}");
  const std::string logged = ::testing::internal::GetCapturedStderr();
  // A prefix long enough to be the token and nothing else.
  const std::string secret = t.substr(4, 12);
  EXPECT_EQ(logged.find(secret), std::string::npos) << logged;
  for (const HttpResponse& r : answers_) {
    EXPECT_EQ(r.body.find(secret), std::string::npos) << r.body;
    for (const auto& [name, value] : r.headers) {
      EXPECT_EQ(value.find(secret), std::string::npos) << name;
    }
  }
  EXPECT_EQ(metrics_.Expose().find(secret), std::string::npos);
}

// --------------------------------------------------------------- OpenAPI

std::string ReadOpenApi() {
  std::ifstream file(CFREC_OPENAPI_PATH);
  EXPECT_TRUE(file.is_open()) << CFREC_OPENAPI_PATH;
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(OpenApi, DeclaresBearerAuthExactlyOnRoutesThatChangeState) {
  const std::string yaml = ReadOpenApi();
  const size_t components = yaml.find("\ncomponents:\n");
  ASSERT_NE(components, std::string::npos);
  const std::string schemes = yaml.substr(components);
  EXPECT_NE(schemes.find("  securitySchemes:\n    bearerAuth:\n"
                         "      type: http\n      scheme: bearer\n"),
            std::string::npos);
  EXPECT_NE(schemes.find("    Unauthorized:\n"), std::string::npos);
  // No document-wide requirement: operations without one are open.
  EXPECT_EQ(yaml.substr(0, components).find("\nsecurity:"), std::string::npos);
  for (const RouteInfo& route : Routes()) {
    const std::string key = "\n  " + std::string(route.path) + ":\n";
    const size_t at = yaml.find(key);
    ASSERT_NE(at, std::string::npos) << route.path;
    size_t end = yaml.find("\n  /", at + key.size());
    if (end == std::string::npos || end > components) end = components;
    const std::string operation = yaml.substr(at, end - at);
    const bool secured =
        operation.find("      security:\n        - bearerAuth: []\n") !=
        std::string::npos;
    const bool answers_401 =
        operation.find(
            "        '401': {$ref: "
            "'#/components/responses/Unauthorized'}\n") != std::string::npos;
    EXPECT_EQ(secured, route.changes_state) << route.path;
    EXPECT_EQ(answers_401, route.changes_state) << route.path;
  }
}

}  // namespace
}  // namespace cfrec::server
