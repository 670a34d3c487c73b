// LlmClient against an in-process httplib server on 127.0.0.1 whose handler follows a script per
// call: success, retries on 5xx/429/timeouts/malformed replies, immediate 4xx failures, giving up,
// refused connections, endpoint validation and concurrent callers.
#include "autointerp/llm_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "expect_error.h"

namespace glassbox::autointerp {
namespace {

using json = nlohmann::json;
using glassbox::testing::expect_error;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// An OpenAI-style endpoint at http://127.0.0.1:PORT/v1 whose reply to call n (0-based) is
// script(n, request, response). Records every request body and Authorization header.
class ScriptedServer {
 public:
  using Script = std::function<void(int call, const httplib::Request&, httplib::Response&)>;

  explicit ScriptedServer(Script script) : script_(std::move(script)) {
    svr_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      const int call = calls_++;
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(req.body);
        auths_.push_back(req.get_header_value("Authorization"));
      }
      script_(call, req, res);
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    // httplib 0.11 has no wait_until_ready(); the bound matters only when the server fails.
    const auto t0 = Clock::now();
    while (!svr_.is_running() && seconds_since(t0) < 60) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~ScriptedServer() {
    svr_.stop();
    thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  int calls() const { return calls_; }
  std::string body(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_.at(i);
  }
  std::string auth(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    return auths_.at(i);
  }

 private:
  Script script_;
  httplib::Server svr_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> calls_{0};
  std::mutex mu_;
  std::vector<std::string> bodies_, auths_;
};

void answer(httplib::Response& res, const std::string& content, int prompt_tokens = 12,
            int completion_tokens = 3) {
  json body = {{"id", "chatcmpl-1"},
               {"object", "chat.completion"},
               {"choices",
                {{{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", content}}},
                  {"finish_reason", "stop"}}}},
               {"usage",
                {{"prompt_tokens", prompt_tokens},
                 {"completion_tokens", completion_tokens},
                 {"total_tokens", prompt_tokens + completion_tokens}}}};
  res.set_content(body.dump(), "application/json");
}

void fail(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", {{"message", message}, {"type", "test"}}}}.dump(),
                  "application/json");
}

LlmConfig fast_config(const std::string& endpoint) {
  LlmConfig c;
  c.endpoint = endpoint;
  c.model = "test-model";
  c.timeout_s = 5;
  c.max_retries = 5;
  c.backoff_s = 0.01;
  c.max_backoff_s = 0.05;
  return c;
}

const std::vector<ChatMessage> kMessages = {{"system", "You explain features."},
                                            {"user", "Example 1: the <<cat>> sat"}};

TEST(LlmClient, SendsTheRequestAndParsesTheReply) {
  ScriptedServer server([](int, const httplib::Request&, httplib::Response& res) {
    answer(res, "[EXPLANATION]: cats", 40, 7);
  });
  LlmConfig c = fast_config(server.endpoint() + "/");  // trailing '/' is fine
  c.api_key = "sk-test";
  c.max_tokens = 77;
  c.temperature = 0.5;
  const LlmClient client(c);
  const LlmReply reply = client.chat(kMessages);
  EXPECT_EQ(reply.text, "[EXPLANATION]: cats");
  EXPECT_EQ(reply.usage.prompt_tokens, 40);
  EXPECT_EQ(reply.usage.completion_tokens, 7);
  EXPECT_EQ(reply.attempts, 1);
  ASSERT_EQ(server.calls(), 1);
  EXPECT_EQ(server.auth(0), "Bearer sk-test");
  EXPECT_EQ(server.body(0), client.request_json(kMessages));
  const json sent = json::parse(server.body(0));
  EXPECT_EQ(sent["model"], "test-model");
  EXPECT_EQ(sent["max_tokens"], 77);
  EXPECT_DOUBLE_EQ(sent["temperature"].get<double>(), 0.5);
  ASSERT_EQ(sent["messages"].size(), 2u);
  EXPECT_EQ(sent["messages"][0]["role"], "system");
  EXPECT_EQ(sent["messages"][1]["content"], "Example 1: the <<cat>> sat");

  // No key, no Authorization header; a reply without "usage" counts 0 tokens.
  ScriptedServer bare([](int, const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"choices":[{"message":{"content":"x"}}]})", "application/json");
  });
  const LlmReply r2 = LlmClient(fast_config(bare.endpoint())).chat(kMessages);
  EXPECT_EQ(r2.text, "x");
  EXPECT_EQ(r2.usage.prompt_tokens, 0);
  EXPECT_EQ(r2.usage.completion_tokens, 0);
  EXPECT_EQ(bare.auth(0), "");
}

TEST(LlmClient, RequestJsonIsCanonical) {
  LlmConfig c = fast_config("http://127.0.0.1:1/v1");
  c.model = "m";
  const LlmClient client(c);
  EXPECT_EQ(client.request_json({{"user", "hi"}}),
            R"({"model":"m","messages":[{"role":"user","content":"hi"}],)"
            R"("max_tokens":200,"temperature":0.0})");
  // Partial UTF-8 (a context cut inside a character) is replaced, not thrown on.
  EXPECT_EQ(client.request_json({{"user", "a\xe2\x82"}}),
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xef\xbf\xbd\"}],"
            "\"max_tokens\":200,\"temperature\":0.0}");
}

TEST(LlmClient, RetriesServerErrors) {
  ScriptedServer server([](int call, const httplib::Request&, httplib::Response& res) {
    if (call < 2) return fail(res, 500, "boom");
    answer(res, "ok");
  });
  std::vector<std::string> retries;
  LlmConfig c = fast_config(server.endpoint());
  c.on_retry = [&](const std::string& what) { retries.push_back(what); };
  const LlmReply reply = LlmClient(c).chat(kMessages);
  EXPECT_EQ(reply.text, "ok");
  EXPECT_EQ(reply.attempts, 3);
  EXPECT_EQ(server.calls(), 3);
  ASSERT_EQ(retries.size(), 2u);
  EXPECT_NE(retries[0].find("HTTP 500: boom, retrying in "), std::string::npos) << retries[0];
}

TEST(LlmClient, BackoffDoublesUpToTheCap) {
  ScriptedServer server([](int call, const httplib::Request&, httplib::Response& res) {
    if (call < 4) return fail(res, 502, "bad gateway");
    answer(res, "ok");
  });
  std::vector<double> waits, printed;
  LlmConfig c = fast_config(server.endpoint());
  c.backoff_s = 0.05;
  c.max_backoff_s = 0.15;
  c.on_retry = [&](const std::string& what) {
    printed.push_back(std::stod(what.substr(what.find("retrying in ") + 12)));
  };
  c.sleep = [&](double s) { waits.push_back(s); };  // recorded, not slept
  EXPECT_EQ(LlmClient(c).chat(kMessages).attempts, 5);
  const double expected[] = {0.05, 0.1, 0.15, 0.15};  // +-20% jitter
  ASSERT_EQ(waits.size(), 4u);
  ASSERT_EQ(printed.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_GE(waits[i], expected[i] * 0.8) << i;
    EXPECT_LE(waits[i], expected[i] * 1.2) << i;
    EXPECT_NEAR(printed[i], waits[i], 0.006) << i;  // the message states the wait to 0.01
  }
}

TEST(LlmClient, HonoursRetryAfter) {
  ScriptedServer server([](int call, const httplib::Request&, httplib::Response& res) {
    if (call == 0) {
      res.set_header("Retry-After", "1");
      return fail(res, 429, "rate limited");
    }
    answer(res, "ok");
  });
  std::vector<std::string> retries;
  std::vector<double> waits;
  LlmConfig c = fast_config(server.endpoint());
  c.max_backoff_s = 30;
  c.on_retry = [&](const std::string& what) { retries.push_back(what); };
  c.sleep = [&](double s) { waits.push_back(s); };
  EXPECT_EQ(LlmClient(c).chat(kMessages).attempts, 2);
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0], "HTTP 429: rate limited, retrying in 1.0 s");
  EXPECT_EQ(waits, std::vector<double>{1.0});  // the server's wait, not the 0.01 s backoff

  // A Retry-After beyond max_backoff_s is capped.
  ScriptedServer greedy([](int call, const httplib::Request&, httplib::Response& res) {
    if (call == 0) {
      res.set_header("Retry-After", "100");
      return fail(res, 429, "slow down");
    }
    answer(res, "ok");
  });
  waits.clear();
  c = fast_config(greedy.endpoint());  // max_backoff_s 0.05
  c.sleep = [&](double s) { waits.push_back(s); };
  EXPECT_EQ(LlmClient(c).chat(kMessages).attempts, 2);
  EXPECT_EQ(waits, std::vector<double>{0.05});
}

TEST(LlmClient, RetriesAfterATimeout) {
  // The first reply is held until the client has given up on it (released after chat()
  // returns; 30 s at most should the client wrongly wait), so it always comes too late.
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  ScriptedServer server([&](int call, const httplib::Request&, httplib::Response& res) {
    if (call == 0) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::seconds(30), [&] { return released; });
    }
    answer(res, call == 0 ? "too late" : "in time");
  });
  std::vector<std::string> retries;
  LlmConfig c = fast_config(server.endpoint());
  c.timeout_s = 1;
  c.on_retry = [&](const std::string& what) { retries.push_back(what); };
  const auto t0 = Clock::now();
  const LlmReply reply = LlmClient(c).chat(kMessages);
  const double took = seconds_since(t0);
  {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
  }
  cv.notify_all();
  EXPECT_EQ(reply.text, "in time");  // gave up on the held reply rather than waiting for it
  EXPECT_EQ(reply.attempts, 2);
  EXPECT_GE(took, 0.9);  // not before its timeout
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_NE(retries[0].find("within 1.0 s"), std::string::npos) << retries[0];
}

TEST(LlmClient, RetriesMalformedReplies) {
  ScriptedServer server([](int call, const httplib::Request&, httplib::Response& res) {
    switch (call) {
      case 0:
        return res.set_content("<html>oops</html>", "text/html");
      case 1:
        return res.set_content(R"({"choices":[]})", "application/json");
      case 2:
        return res.set_content(R"({"choices":[{"message":{"content":null}}]})", "x/y");
      case 3:
        return res.set_content(R"({"choices":[{"message":{"role":"assistant"}}]})", "a/b");
      default:
        return answer(res, "fine");
    }
  });
  std::vector<std::string> retries;
  LlmConfig c = fast_config(server.endpoint());
  c.on_retry = [&](const std::string& what) { retries.push_back(what); };
  const LlmReply reply = LlmClient(c).chat(kMessages);
  EXPECT_EQ(reply.text, "fine");
  EXPECT_EQ(reply.attempts, 5);
  EXPECT_EQ(server.calls(), 5);
  ASSERT_EQ(retries.size(), 4u);
  EXPECT_NE(retries[0].find("not JSON): <html>oops</html>"), std::string::npos) << retries[0];
  EXPECT_NE(retries[1].find("no choices[0].message.content"), std::string::npos) << retries[1];
}

TEST(LlmClient, ClientErrorsFailAtOnce) {
  ScriptedServer bad_request([](int, const httplib::Request&, httplib::Response& res) {
    fail(res, 400, "model 'test-model' does not exist");
  });
  expect_error([&] { LlmClient(fast_config(bad_request.endpoint())).chat(kMessages); },
               ErrorCode::kIo,
               "POST " + bad_request.endpoint() +
                   "/chat/completions: HTTP 400: model 'test-model' does not exist");
  EXPECT_EQ(bad_request.calls(), 1);

  // A plain-text body is quoted, cut to ~200 characters, on one line.
  ScriptedServer unauthorized([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_content("denied\n" + std::string(1000, 'x'), "text/plain");
  });
  try {
    LlmClient(fast_config(unauthorized.endpoint())).chat(kMessages);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("HTTP 401: denied xxx"), std::string::npos) << what;
    EXPECT_LT(what.size(), 300u) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  EXPECT_EQ(unauthorized.calls(), 1);
}

TEST(LlmClient, GivesUpAfterMaxRetries) {
  ScriptedServer server(
      [](int, const httplib::Request&, httplib::Response& res) { fail(res, 503, "overloaded"); });
  LlmConfig c = fast_config(server.endpoint());
  c.max_retries = 3;
  expect_error([&] { LlmClient(c).chat(kMessages); }, ErrorCode::kIo,
               "POST " + server.endpoint() +
                   "/chat/completions: gave up after 4 attempts: HTTP 503: overloaded");
  EXPECT_EQ(server.calls(), 4);

  c.max_retries = 0;
  expect_error([&] { LlmClient(c).chat(kMessages); }, ErrorCode::kIo, "gave up after 1 attempt:");
  EXPECT_EQ(server.calls(), 5);
}

// A port nothing listens on: bound to find a free one, then closed.
int closed_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(LlmClient, ConnectionRefused) {
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port());
  LlmConfig c = fast_config(url);
  c.max_retries = 2;
  int retries = 0;
  c.on_retry = [&](const std::string&) { ++retries; };
  expect_error([&] { LlmClient(c).chat(kMessages); }, ErrorCode::kIo,
               "POST " + url + "/chat/completions: gave up after 3 attempts: cannot connect");
  EXPECT_EQ(retries, 2);
}

TEST(LlmClient, ValidatesTheConfig) {
  for (const std::string bad :
       {"ftp://x", "localhost:80", "", "http://", "http:///v1", "http://host:0",
        "http://host:99999", "http://host:80x", "http://user@host/v1", "http://host/v1?key=1",
        "http://host/v 1", "https://[zz]:80"}) {
    expect_error([&] { LlmClient(fast_config(bad)); }, ErrorCode::kInvalidArgument,
                 "--endpoint '" + bad + "': expected http://host[:port][/path] or https://");
  }
  const std::pair<std::string, std::string> good[] = {
      {"http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1/chat/completions"},
      {"https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"},
      {"HTTP://localhost", "http://localhost/chat/completions"},
      {"http://[::1]:8080/v1", "http://[::1]:8080/v1/chat/completions"},
  };
  for (const auto& [endpoint, url] : good) EXPECT_EQ(LlmClient(fast_config(endpoint)).url(), url);

  LlmConfig c = fast_config("http://127.0.0.1:8080/v1");
  c.model = "";
  expect_error([&] { LlmClient{c}; }, ErrorCode::kInvalidArgument, "--model: ");
  c = fast_config("http://127.0.0.1:8080/v1");
  c.timeout_s = 0;
  expect_error([&] { LlmClient{c}; }, ErrorCode::kInvalidArgument, "--timeout: ");
  c = fast_config("http://127.0.0.1:8080/v1");
  c.max_retries = -1;
  expect_error([&] { LlmClient{c}; }, ErrorCode::kInvalidArgument, "--retries: ");
}

TEST(LlmClient, ConcurrentCallers) {
  std::atomic<int> in_flight{0}, most_in_flight{0};
  ScriptedServer server([&](int, const httplib::Request& req, httplib::Response& res) {
    const int now = ++in_flight;
    int seen = most_in_flight;
    while (now > seen && !most_in_flight.compare_exchange_weak(seen, now)) {
    }
    // Each reply waits until two calls are in flight at once: concurrent callers get there at
    // once, serialised ones only after 10 s each, leaving most_in_flight at 1.
    const auto t0 = Clock::now();
    while (most_in_flight < 2 && seconds_since(t0) < 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    --in_flight;
    answer(res, "echo " + json::parse(req.body)["messages"][0]["content"].get<std::string>());
  });
  const LlmClient client(fast_config(server.endpoint()));
  const ChatFn chat = as_chat_fn(client);
  constexpr int kThreads = 8;
  std::vector<std::string> replies(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      try {
        replies[i] = chat({{"user", "caller " + std::to_string(i)}});
      } catch (const std::exception& e) {
        replies[i] = std::string("error: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(replies[i], "echo caller " + std::to_string(i));
  EXPECT_EQ(server.calls(), kThreads);
  EXPECT_GT(most_in_flight.load(), 1);  // the calls really overlapped
}

}  // namespace
}  // namespace glassbox::autointerp
