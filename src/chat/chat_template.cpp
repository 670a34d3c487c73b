#include "chat/chat_template.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "chat/jinja_eval.h"
#include "chat/jinja_parser.h"
#include "core/error.h"

namespace glassbox {
namespace chat_detail {

using ojson = nlohmann::ordered_json;
using jinja::Value;

Value from_json(const ojson& j, int depth, const std::string& field) {
  if (depth > jinja::kMaxValueDepth) {
    fail(ErrorCode::kInvalidArgument,
         field + ": nested more than " + std::to_string(jinja::kMaxValueDepth) + " levels deep");
  }
  switch (j.type()) {
    case ojson::value_t::null:
      return Value::none();
    case ojson::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case ojson::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case ojson::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case ojson::value_t::number_float:
      return Value::number(j.get<double>());
    case ojson::value_t::string:
      return Value::string(j.get<std::string>());
    case ojson::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const ojson& x : j) items.push_back(from_json(x, depth + 1, field));
      return Value::list(std::move(items));
    }
    case ojson::value_t::object: {
      jinja::MapData m;
      m.entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        m.entries.emplace_back(it.key(), from_json(it.value(), depth + 1, field));
      return Value::map(std::move(m));
    }
    default:
      fail(ErrorCode::kInvalidArgument, field + ": unsupported JSON value");
  }
}

ojson parse_field(const std::string& text, const std::string& field) {
  try {
    return ojson::parse(text);
  } catch (const ojson::exception& e) {
    fail(ErrorCode::kInvalidArgument, field + ": not valid JSON: " + e.what());
  }
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), for the weekday.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// C-locale strftime over a ChatDateTime (what Python's datetime.strftime gives in the C locale);
// unknown directives are kept as written.
std::string strftime_text(const std::string& fmt, const ChatDateTime& t) {
  static const char* const kMonths[] = {"January",   "February", "March",    "April",
                                        "May",       "June",     "July",     "August",
                                        "September", "October",  "November", "December"};
  static const char* const kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                      "Thursday", "Friday", "Saturday"};
  const int64_t days = days_from_civil(t.year, t.month, t.day);
  const int wday = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday (4)
  const int yday = static_cast<int>(days - days_from_civil(t.year, 1, 1)) + 1;
  const auto num = [](int v, int width, char pad = '0') {
    std::string s = std::to_string(v);
    while (static_cast<int>(s.size()) < width) s.insert(s.begin(), pad);
    return s;
  };
  const std::string month = kMonths[t.month - 1], day = kDays[wday];
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 == fmt.size()) {
      out += fmt[i];
      continue;
    }
    const char c = fmt[++i];
    switch (c) {
      case 'Y':
        out += std::to_string(t.year);
        break;
      case 'y':
        out += num(t.year % 100, 2);
        break;
      case 'm':
        out += num(t.month, 2);
        break;
      case 'd':
        out += num(t.day, 2);
        break;
      case 'e':
        out += num(t.day, 2, ' ');
        break;
      case 'H':
        out += num(t.hour, 2);
        break;
      case 'I':
        out += num(t.hour % 12 == 0 ? 12 : t.hour % 12, 2);
        break;
      case 'M':
        out += num(t.minute, 2);
        break;
      case 'S':
        out += num(t.second, 2);
        break;
      case 'p':
        out += t.hour < 12 ? "AM" : "PM";
        break;
      case 'j':
        out += num(yday, 3);
        break;
      case 'b':
      case 'h':
        out += month.substr(0, 3);
        break;
      case 'B':
        out += month;
        break;
      case 'a':
        out += day.substr(0, 3);
        break;
      case 'A':
        out += day;
        break;
      case 'u':
        out += std::to_string(wday == 0 ? 7 : wday);
        break;
      case 'w':
        out += std::to_string(wday);
        break;
      case 'F':
        out += std::to_string(t.year) + "-" + num(t.month, 2) + "-" + num(t.day, 2);
        break;
      case 'D':
        out += num(t.month, 2) + "/" + num(t.day, 2) + "/" + num(t.year % 100, 2);
        break;
      case 'T':
        out += num(t.hour, 2) + ":" + num(t.minute, 2) + ":" + num(t.second, 2);
        break;
      case '%':
        out += '%';
        break;
      default:
        out += '%';
        out += c;
    }
  }
  return out;
}

void check_date(const ChatDateTime& t) {
  static const int kDaysIn[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (t.year < 1 || t.year > 9999 || t.month < 1 || t.month > 12 || t.day < 1 ||
      t.day > kDaysIn[t.month - 1] || t.hour < 0 || t.hour > 23 || t.minute < 0 || t.minute > 59 ||
      t.second < 0 || t.second > 60) {
    fail(ErrorCode::kInvalidArgument, "the date for strftime_now is not a valid date");
  }
}

}  // namespace chat_detail

ChatDateTime ChatDateTime::now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
}

ChatTemplate ChatTemplate::parse(std::string source, std::string name,
                                 const ChatTemplateLimits& limits) {
  if (source.size() > limits.max_source_bytes) {
    fail(ErrorCode::kFormat, name + ": the template has " + std::to_string(source.size()) +
                                 " bytes, more than the limit of " +
                                 std::to_string(limits.max_source_bytes));
  }
  ChatTemplate t;
  t.tmpl_ = std::make_shared<const jinja::Template>(jinja::parse_template(source, name));
  t.name_ = std::move(name);
  t.source_ = std::move(source);
  return t;
}

std::string render_chat_template(const ChatTemplate& tmpl, const ChatRenderInput& input,
                                 const ChatTemplateLimits& limits) {
  using namespace chat_detail;
  check_date(input.now);
  const ojson messages = parse_field(input.messages_json, "messages");
  if (!messages.is_array()) fail(ErrorCode::kInvalidArgument, "messages: expected a list");
  const ojson tools = parse_field(input.tools_json, "tools");
  const ojson extra = parse_field(input.extra_json, "extra variables");
  if (!extra.is_object())
    fail(ErrorCode::kInvalidArgument, "extra variables: expected a JSON object");

  jinja::MapData vars;
  vars.entries.emplace_back("messages", from_json(messages, 1, "messages"));
  vars.entries.emplace_back("add_generation_prompt", Value::boolean(input.add_generation_prompt));
  vars.entries.emplace_back("bos_token", Value::string(input.bos_token));
  vars.entries.emplace_back("eos_token", Value::string(input.eos_token));
  vars.entries.emplace_back("tools", from_json(tools, 1, "tools"));
  const ChatDateTime now = input.now;
  vars.entries.emplace_back(
      "strftime_now",
      Value::callable("strftime_now", [now](jinja::Interpreter& in, jinja::CallArgs& a) {
        const auto p = jinja::bind_args(a, {"format"}, 1, "strftime_now()");
        if (!p[0]->is_string())
          fail(ErrorCode::kInvalidArgument, "strftime_now() expects a format string");
        return in.new_string(strftime_text(p[0]->str(), now));
      }));
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (vars.find(it.key()))
      fail(ErrorCode::kInvalidArgument, "extra variables: '" + it.key() + "' is already set");
    vars.entries.emplace_back(it.key(), from_json(it.value(), 1, it.key()));
  }

  jinja::RenderLimits rl;
  rl.max_output_bytes = limits.max_output_bytes;
  rl.max_string_bytes = limits.max_string_bytes;
  rl.max_steps = limits.max_steps;
  rl.max_alloc_bytes = limits.max_alloc_bytes;
  rl.max_call_depth = limits.max_call_depth;
  jinja::Interpreter interpreter(tmpl.syntax(), rl);
  return interpreter.render(vars);
}

}  // namespace glassbox
