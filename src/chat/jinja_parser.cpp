#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "core/error.h"

namespace glassbox::jinja {
namespace parser_detail {

using T = Token::Type;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name) : t_(std::move(tokens)), name_(name) {}

  Template parse() {
    Template tmpl;
    tmpl.name = name_;
    tmpl.body = subparse({}, nullptr);
    return tmpl;
  }

 private:
  // Counts nesting (brackets, unary chains, blocks) on the way down.
  struct Nest {
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.nesting_ > kMaxNesting)
        p_.error(p_.cur(),
                 "the template nests more than " + std::to_string(kMaxNesting) + " levels deep");
    }
    ~Nest() { --p_.nesting_; }
    Parser& p_;
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == T::kOperator && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == T::kName && cur().text == n; }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::kText:
        return "text";
      case T::kVarBegin:
        return "'{{'";
      case T::kVarEnd:
        return "'}}'";
      case T::kBlockBegin:
        return "'{%'";
      case T::kBlockEnd:
        return "'%}'";
      case T::kName:
        return "'" + t.text + "'";
      case T::kString:
        return "a string";
      case T::kInteger:
      case T::kFloat:
        return "a number";
      case T::kOperator:
        return "'" + t.text + "'";
      case T::kEnd:
        return "the end of the template";
    }
    return "?";
  }

  [[noreturn]] void error(const Token& at, const std::string& what) const {
    fail(ErrorCode::kFormat, template_error_prefix(name_, at.line, at.column) + what);
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    error(cur(), "expected " + expected + ", got " + describe(cur()));
  }
  void expect_op(const char* op) {
    if (!is_op(op)) unexpected(std::string("'") + op + "'");
    next();
  }
  void expect_block_end() {
    if (cur().type != T::kBlockEnd) unexpected("'%}'");
    next();
  }
  std::string expect_name() {
    if (cur().type != T::kName) unexpected("a name");
    std::string n = cur().text;
    next();
    return n;
  }

  ExprPtr node(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  // Sets e's depth from its children; refuses trees deeper than kMaxExprDepth.
  ExprPtr finish(ExprPtr e) {
    int d = 0;
    for (const ExprPtr& c : e->items)
      if (c) d = std::max(d, c->depth);
    for (const ExprPtr& c : e->args.positional) d = std::max(d, c->depth);
    for (const auto& kw : e->args.keyword) d = std::max(d, kw.second->depth);
    if (e->args.star) d = std::max(d, e->args.star->depth);
    if (e->args.star_star) d = std::max(d, e->args.star_star->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) {
      fail(ErrorCode::kFormat, template_error_prefix(name_, e->line, e->column) +
                                   "expression nested more than " + std::to_string(kMaxExprDepth) +
                                   " levels deep");
    }
    return e;
  }
  ExprPtr unary(Expr::Kind kind, const Token& at, ExprPtr operand) {
    ExprPtr e = node(kind, at);
    e->items.push_back(std::move(operand));
    return finish(std::move(e));
  }
  ExprPtr binary(Expr::Kind kind, const Token& at, std::string op, ExprPtr a, ExprPtr b) {
    ExprPtr e = node(kind, at);
    e->name = std::move(op);
    e->items.push_back(std::move(a));
    e->items.push_back(std::move(b));
    return finish(std::move(e));
  }

  // ---- statements -------------------------------------------------------------------------

  // Parses until a {% NAME %} with NAME in `ends` (consuming "{%" and NAME), or the end of the
  // template when `ends` is empty.
  Body subparse(std::initializer_list<const char*> ends, std::string* found) {
    Body body;
    while (true) {
      const Token& tok = cur();
      if (tok.type == T::kEnd) {
        if (ends.size() == 0) return body;
        std::string want;
        for (const char* e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
        error(tok, "unexpected end of template: expected " + want);
      }
      if (tok.type == T::kText) {
        auto s = stmt(Stmt::Kind::kText, tok);
        s->text = tok.text;
        body.push_back(std::move(s));
        next();
      } else if (tok.type == T::kVarBegin) {
        auto s = stmt(Stmt::Kind::kOutput, tok);
        next();
        s->expr = parse_tuple(true, false);
        if (cur().type != T::kVarEnd) unexpected("'}}'");
        next();
        body.push_back(std::move(s));
      } else if (tok.type == T::kBlockBegin) {
        const Token& name = peek();
        if (name.type != T::kName) {
          next();
          unexpected("a statement name");
        }
        for (const char* e : ends) {
          if (name.text == e) {
            next();
            next();
            if (found) *found = e;
            return body;
          }
        }
        next();
        body.push_back(statement());
      } else {
        unexpected("text or a tag");
      }
    }
  }

  StmtPtr stmt(Stmt::Kind kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  StmtPtr statement() {
    const Token tok = cur();
    const std::string& n = tok.text;
    Nest nest(*this);
    next();
    if (n == "for") return parse_for(tok);
    if (n == "if") return parse_if(tok);
    if (n == "set") return parse_set(tok);
    if (n == "macro") return parse_macro(tok);
    if (n == "filter") return parse_filter_block(tok);
    if (n == "generation") {
      auto s = stmt(Stmt::Kind::kBlock, tok);
      expect_block_end();
      s->body = subparse({"endgeneration"}, nullptr);
      expect_block_end();
      return s;
    }
    if (n == "break" || n == "continue") {
      if (loops_ == 0) error(tok, "'" + n + "' outside of a for loop");
      expect_block_end();
      return stmt(n == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, tok);
    }
    static const char* const kUnsupported[] = {"include", "extends", "block", "import",
                                               "from",    "call",    "with",  "autoescape",
                                               "do",      "trans"};
    for (const char* u : kUnsupported)
      if (n == u) error(tok, "the '" + n + "' tag is not supported in chat templates");
    error(tok, "unknown tag '" + n + "'");
  }

  Target parse_target(bool allow_attr) {
    Target t;
    const bool parens = is_op("(");
    if (parens) next();
    t.names.push_back(expect_name());
    if (allow_attr && !parens && is_op(".")) {
      next();
      t.attr = expect_name();
      return t;
    }
    while (is_op(",")) {
      t.tuple = true;
      next();
      if (cur().type != T::kName) break;  // trailing comma
      t.names.push_back(expect_name());
    }
    if (parens) expect_op(")");
    return t;
  }

  StmtPtr parse_for(const Token& tok) {
    auto s = stmt(Stmt::Kind::kFor, tok);
    s->target = parse_target(false);
    if (!is_name("in")) unexpected("'in'");
    next();
    s->expr = parse_tuple(false, false);
    if (is_name("if")) {
      next();
      s->condition = parse_expression();
    }
    if (is_name("recursive")) error(cur(), "recursive for loops are not supported");
    expect_block_end();
    ++loops_;
    std::string found;
    s->body = subparse({"endfor", "else"}, &found);
    --loops_;
    if (found == "else") {
      expect_block_end();
      s->else_body = subparse({"endfor"}, nullptr);
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_if(const Token& tok) {
    auto s = stmt(Stmt::Kind::kIf, tok);
    while (true) {
      s->conditions.push_back(parse_tuple(false, false));
      expect_block_end();
      std::string found;
      s->bodies.push_back(subparse({"elif", "else", "endif"}, &found));
      if (found == "elif") continue;
      if (found == "else") {
        expect_block_end();
        s->else_body = subparse({"endif"}, nullptr);
      }
      expect_block_end();
      return s;
    }
  }

  StmtPtr parse_set(const Token& tok) {
    auto s = stmt(Stmt::Kind::kSet, tok);
    s->target = parse_target(true);
    if (is_op("=")) {
      next();
      s->expr = parse_tuple(true, false);
      expect_block_end();
      return s;
    }
    if (s->target.tuple) error(tok, "a block set assigns one name");
    s->filter = parse_filter_chain(nullptr, false);
    expect_block_end();
    s->body = subparse({"endset"}, nullptr);
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro(const Token& tok) {
    auto s = stmt(Stmt::Kind::kMacro, tok);
    s->name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name();
      for (const MacroParam& q : s->params)
        if (q.name == p.name) error(tok, "duplicate macro parameter '" + p.name + "'");
      if (is_op("=")) {
        next();
        p.default_value = parse_expression();
      } else if (!s->params.empty() && s->params.back().default_value) {
        error(cur(), "non-default parameter '" + p.name + "' follows a default parameter");
      }
      s->params.push_back(std::move(p));
    }
    next();
    expect_block_end();
    const int saved = loops_;
    loops_ = 0;
    s->body = subparse({"endmacro"}, nullptr);
    loops_ = saved;
    if (cur().type == T::kName && cur().text == s->name) next();  // {% endmacro name %}
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block(const Token& tok) {
    auto s = stmt(Stmt::Kind::kFilter, tok);
    if (cur().type != T::kName) unexpected("a filter name");
    s->filter = parse_filter_chain(nullptr, true);
    expect_block_end();
    s->body = subparse({"endfilter"}, nullptr);
    expect_block_end();
    return s;
  }

  // Filters applied to a block's captured text (a null operand): "| f(args) | g" after
  // {% set x %}, "f(args) | g" after {% filter %} (`bare_first`).
  ExprPtr parse_filter_chain(ExprPtr operand, bool bare_first) {
    bool first = true;
    while (is_op("|") || (first && bare_first && cur().type == T::kName)) {
      if (is_op("|")) next();
      first = false;
      operand = parse_filter(std::move(operand));
    }
    return operand;
  }

  // ---- expressions ------------------------------------------------------------------------

  // Comma-separated expressions: one -> itself, several (or a trailing comma) -> a tuple.
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens) {
    const Token start = cur();
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) {
        if (!is_op(",")) break;
        next();
        is_tuple = true;
      }
      if (cur().type == T::kVarEnd || cur().type == T::kBlockEnd || is_op(")")) break;
      items.push_back(with_condexpr ? parse_expression() : parse_or());
    }
    if (!is_tuple) {
      if (items.size() == 1) return std::move(items[0]);
      if (!explicit_parens) unexpected("an expression");
    }
    ExprPtr e = node(Expr::Kind::kTuple, start);
    e->items = std::move(items);
    return finish(std::move(e));
  }

  ExprPtr parse_expression() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const Token at = cur();
      Nest nest(*this);
      next();
      ExprPtr cond = parse_or();
      ExprPtr other;
      if (is_name("else")) {
        next();
        other = parse_expression();
      }
      ExprPtr c = node(Expr::Kind::kCond, at);
      c->items.push_back(std::move(cond));
      c->items.push_back(std::move(e));
      c->items.push_back(std::move(other));
      e = finish(std::move(c));
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kOr, at, "or", std::move(e), parse_and());
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kAnd, at, "and", std::move(e), parse_not());
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Token at = cur();
      Nest nest(*this);
      next();
      return unary(Expr::Kind::kNot, at, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token at = cur();
    ExprPtr first = parse_math1();
    ExprPtr e;
    while (true) {
      std::string op;
      if (cur().type == T::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == T::kName && peek().text == "in") {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      if (!e) {
        e = node(Expr::Kind::kCompare, at);
        e->items.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->items.push_back(parse_math1());
    }
    return e ? finish(std::move(e)) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kBinary, at, at.text, std::move(e), parse_concat());
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kBinary, at, "~", std::move(e), parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kBinary, at, at.text, std::move(e), parse_pow());
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const Token at = cur();
      next();
      e = binary(Expr::Kind::kBinary, at, "**", std::move(e), parse_unary(true));
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    const Token at = cur();
    Nest nest(*this);
    ExprPtr e;
    if (is_op("-")) {
      next();
      e = unary(Expr::Kind::kNeg, at, parse_unary(false));
    } else if (is_op("+")) {
      next();
      e = unary(Expr::Kind::kPos, at, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr constant(const Token& at, Value v) {
    ExprPtr e = node(Expr::Kind::kConst, at);
    e->constant = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token tok = cur();
    switch (tok.type) {
      case T::kName: {
        next();
        if (tok.text == "true" || tok.text == "True") return constant(tok, Value::boolean(true));
        if (tok.text == "false" || tok.text == "False") return constant(tok, Value::boolean(false));
        if (tok.text == "none" || tok.text == "None") return constant(tok, Value::none());
        ExprPtr e = node(Expr::Kind::kName, tok);
        e->name = tok.text;
        return e;
      }
      case T::kString: {
        std::string s;
        while (cur().type == T::kString) {
          s += cur().text;
          next();
        }
        return constant(tok, Value::string(std::move(s)));
      }
      case T::kInteger:
        next();
        return constant(tok, Value::integer(tok.int_value));
      case T::kFloat:
        next();
        return constant(tok, Value::number(tok.float_value));
      case T::kOperator:
        if (tok.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, true);
          expect_op(")");
          return e;
        }
        if (tok.text == "[" || tok.text == "{") return parse_collection(tok);
        break;
      default:
        break;
    }
    unexpected("an expression");
  }

  ExprPtr parse_collection(const Token& tok) {
    const bool is_list = tok.text == "[";
    const char* close = is_list ? "]" : "}";
    next();
    ExprPtr e = node(is_list ? Expr::Kind::kList : Expr::Kind::kDict, tok);
    while (!is_op(close)) {
      if (!e->items.empty()) {
        expect_op(",");
        if (is_op(close)) break;
      }
      e->items.push_back(parse_expression());
      if (!is_list) {
        expect_op(":");
        e->items.push_back(parse_expression());
      }
    }
    next();
    return finish(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const Token at = cur();
      if (is_op(".")) {
        next();
        if (cur().type == T::kName) {
          ExprPtr g = node(Expr::Kind::kGetattr, at);
          g->name = cur().text;
          g->items.push_back(std::move(e));
          next();
          e = finish(std::move(g));
        } else if (cur().type == T::kInteger) {
          ExprPtr g = node(Expr::Kind::kGetitem, at);
          g->items.push_back(std::move(e));
          g->items.push_back(constant(cur(), Value::integer(cur().int_value)));
          next();
          e = finish(std::move(g));
        } else {
          unexpected("an attribute name");
        }
      } else if (is_op("[")) {
        Nest nest(*this);
        next();
        e = parse_subscript(at, std::move(e));
        expect_op("]");
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(const Token& at, ExprPtr obj) {
    ExprPtr start, stop, step;
    if (!is_op(":")) {
      start = parse_expression();
      if (!is_op(":")) {
        if (is_op(",")) error(cur(), "tuple subscripts are not supported");
        ExprPtr g = node(Expr::Kind::kGetitem, at);
        g->items.push_back(std::move(obj));
        g->items.push_back(std::move(start));
        return finish(std::move(g));
      }
    }
    next();  // ':'
    if (!is_op("]") && !is_op(":")) stop = parse_expression();
    if (is_op(":")) {
      next();
      if (!is_op("]")) step = parse_expression();
    }
    ExprPtr s = node(Expr::Kind::kSlice, at);
    s->items.push_back(std::move(obj));
    s->items.push_back(std::move(start));
    s->items.push_back(std::move(stop));
    s->items.push_back(std::move(step));
    return finish(std::move(s));
  }

  ArgList parse_args() {
    Nest nest(*this);
    expect_op("(");
    ArgList args;
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*")) {
        next();
        if (args.star) error(cur(), "only one *args is allowed");
        args.star = parse_expression();
      } else if (is_op("**")) {
        next();
        if (args.star_star) error(cur(), "only one **kwargs is allowed");
        args.star_star = parse_expression();
      } else if (cur().type == T::kName && peek().type == T::kOperator && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        for (const auto& kw : args.keyword)
          if (kw.first == key) error(cur(), "keyword argument '" + key + "' repeated");
        args.keyword.emplace_back(std::move(key), parse_expression());
      } else {
        if (!args.keyword.empty() || args.star || args.star_star)
          error(cur(), "positional argument follows keyword argument");
        args.positional.push_back(parse_expression());
      }
    }
    next();
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    ExprPtr c = node(Expr::Kind::kCall, cur());
    c->line = callee->line;  // errors point at what is called, not at '('
    c->column = callee->column;
    c->items.push_back(std::move(callee));
    c->args = parse_args();
    return finish(std::move(c));
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::string dotted_name() {
    std::string n = expect_name();
    while (is_op(".")) {
      next();
      n += "." + expect_name();
    }
    return n;
  }

  ExprPtr parse_filter(ExprPtr operand) {
    const Token at = cur();
    ExprPtr f = node(Expr::Kind::kFilter, at);
    f->name = dotted_name();
    if (!find_filter(f->name)) error(at, "no filter named '" + f->name + "'");
    f->items.push_back(std::move(operand));
    if (is_op("(")) f->args = parse_args();
    return finish(std::move(f));
  }

  ExprPtr parse_test(ExprPtr operand) {
    const Token at = cur();
    next();  // 'is'
    ExprPtr t = node(Expr::Kind::kTest, at);
    if (is_name("not")) {
      t->negated = true;
      next();
    }
    t->name = dotted_name();
    if (!find_test(t->name)) error(at, "no test named '" + t->name + "'");
    t->items.push_back(std::move(operand));
    if (is_op("(")) {
      t->args = parse_args();
    } else if ((cur().type == T::kName || cur().type == T::kString || cur().type == T::kInteger ||
                cur().type == T::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error(cur(), "tests cannot be chained with 'is'");
      Nest nest(*this);
      t->args.positional.push_back(parse_postfix(parse_primary()));
    }
    return finish(std::move(t));
  }

  std::vector<Token> t_;
  const std::string& name_;
  size_t i_ = 0;
  int nesting_ = 0;
  int loops_ = 0;
};

}  // namespace parser_detail

Template parse_template(std::string_view source, const std::string& name) {
  return parser_detail::Parser(tokenize(source, name), name).parse();
}

}  // namespace glassbox::jinja
