// math_boxed: extraction, each normalisation, each structure and each policy option. Expected
// verdicts are hand-derived from the mathematics (e.g. 2\frac{1}{2} = 5/2, [1,2) != (1,2)).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "grpo/reward/math_answer.h"

namespace grpo::reward {
namespace {

bool eq(const std::string& gold, const std::string& pred, const MathOptions& o = {}) {
  return math_answers_equal(gold, pred, o);
}

TEST(MathExtract, LastBalancedBoxed) {
  EXPECT_EQ(last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}."), "\\frac{1}{2}");
  EXPECT_EQ(last_boxed("\\fbox{7}"), "7");
  EXPECT_EQ(last_boxed("answer: \\boxed 5$"), "5");
  EXPECT_EQ(last_boxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
  // A truncated last box falls back to the previous complete one.
  EXPECT_EQ(last_boxed("\\boxed{3} and \\boxed{\\frac{1}{"), "3");
  EXPECT_FALSE(last_boxed("no box here").has_value());
}

TEST(MathExtract, Locations) {
  MathOptions o;
  std::string text = "<think>maybe \\boxed{1}</think><answer>The answer is 2</answer>";
  EXPECT_EQ(extract_math_answer(text, o), "1");
  o.location = AnswerLocation::answer_tag;
  EXPECT_EQ(extract_math_answer(text, o), "The answer is 2");
  EXPECT_EQ(extract_math_answer("<answer>so \\boxed{4}</answer>", o), "4");
  EXPECT_FALSE(extract_math_answer("<answer>unclosed", o).has_value());
  o.location = AnswerLocation::boxed;
  o.after_think = true;
  EXPECT_FALSE(extract_math_answer(text, o).has_value());
  EXPECT_FALSE(extract_math_answer("\\boxed{1} no think end", o).has_value());
  EXPECT_EQ(extract_math_answer("<think>\\boxed{1}</think> \\boxed{2}", o), "2");
  o.location = AnswerLocation::any;
  o.after_think = false;
  EXPECT_EQ(extract_math_answer("<answer>9</answer>", o), "9");
}

TEST(MathNormalise, Fractions) {
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\dfrac{1}{2}"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\tfrac12"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\frac12"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "1/2"));
  EXPECT_TRUE(eq("\\frac{3}{4}", "\\frac{6}{8}"));
  EXPECT_FALSE(eq("\\frac{1}{3}", "0.33"));
  EXPECT_TRUE(eq("\\sqrt{3}", "\\sqrt3"));
  EXPECT_TRUE(eq("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"));
}

TEST(MathNormalise, MarkupAndSpacing) {
  EXPECT_TRUE(eq("(1,2)", "\\left( 1 , 2 \\right)"));
  EXPECT_TRUE(eq("5", "\\text{5}"));
  EXPECT_TRUE(eq("5", "$5$"));
  EXPECT_TRUE(eq("5", "5."));
  EXPECT_TRUE(eq("12", "\\mbox{12}"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\displaystyle\\frac{1}{2}"));
  EXPECT_TRUE(eq("3", "\\! 3\\,"));
}

TEST(MathNormalise, Numbers) {
  EXPECT_TRUE(eq("1000", "1,000"));
  EXPECT_TRUE(eq("1234567", "1,234,567"));
  EXPECT_TRUE(eq("1000", "1{,}000"));
  EXPECT_TRUE(eq("25", "025"));
  EXPECT_TRUE(eq("27", "27.0"));
  EXPECT_TRUE(eq("27.0", "27"));
  EXPECT_TRUE(eq("-3", "-3.000"));
  EXPECT_TRUE(eq("1500", "1.5 \\times 10^{3}"));
  EXPECT_TRUE(eq("1500", "1.5e3"));
  EXPECT_TRUE(eq("0.00016", "1.6 \\cdot 10^{-4}"));
  EXPECT_FALSE(eq("1000", "100"));
  EXPECT_FALSE(eq("1450000", "1450001"));  // integers are exact, whatever rel_tol says
  EXPECT_TRUE(eq("2", "\\sqrt{2}^2"));     // 2.0000000000000004 is within rel_tol
  EXPECT_FALSE(eq("6.6\\times10^{-34}", "6.7\\times10^{-34}"));
}

TEST(MathNormalise, MixedNumbers) {
  EXPECT_TRUE(eq("\\frac{5}{2}", "2\\frac{1}{2}"));
  EXPECT_TRUE(eq("-\\frac{5}{2}", "-2\\frac{1}{2}"));
  MathOptions o;
  o.mixed_numbers = false;
  EXPECT_TRUE(eq("1", "2\\frac{1}{2}", o));  // a product when mixed numbers are off
}

TEST(MathNormalise, UnitsPercentDegrees) {
  EXPECT_TRUE(eq("5", "5 \\text{ cm}"));
  EXPECT_TRUE(eq("5", "5\\mathrm{~cm}^2"));
  EXPECT_TRUE(eq("18", "\\$18"));
  EXPECT_TRUE(eq("18", "18 dollars"));
  EXPECT_TRUE(eq("30", "30^\\circ"));
  EXPECT_TRUE(eq("30^{\\circ}", "30"));
  EXPECT_TRUE(eq("50\\%", "50"));
  EXPECT_TRUE(eq("50\\%", "0.5"));
  EXPECT_TRUE(eq("50", "50\\%"));
  EXPECT_FALSE(eq("50\\%", "5"));
}

TEST(MathPolicy, Percent) {
  MathOptions o;
  o.percent = PercentPolicy::fraction;
  EXPECT_TRUE(eq("50\\%", "0.5", o));
  EXPECT_FALSE(eq("50\\%", "50", o));
  o.percent = PercentPolicy::number;
  EXPECT_TRUE(eq("50\\%", "50", o));
  EXPECT_FALSE(eq("50\\%", "0.5", o));
}

TEST(MathNormalise, Constants) {
  EXPECT_TRUE(eq("2\\pi", "2 \\pi"));
  EXPECT_TRUE(eq("\\pi", "3.14159265358979"));
  EXPECT_FALSE(eq("\\pi", "3.14"));
  EXPECT_TRUE(eq("e^2", "\\exp(2)"));
  EXPECT_TRUE(eq("\\frac{\\pi}{6}", "\\frac{1}{6}\\pi"));
  EXPECT_TRUE(eq("i", "\\sqrt{-1}"));
  EXPECT_TRUE(eq("\\infty", "\\infty"));
}

TEST(MathStructure, TuplesSetsIntervals) {
  EXPECT_TRUE(eq("(1,2)", "(1, 2)"));
  EXPECT_FALSE(eq("(1,2)", "(2,1)"));
  EXPECT_TRUE(eq("\\{1,2\\}", "\\{2,1\\}"));
  EXPECT_FALSE(eq("(1,2)", "\\{1,2\\}"));  // strict by default
  MathOptions o;
  o.tuple_vs_set = TupleSetPolicy::lenient;
  EXPECT_TRUE(eq("(1,2)", "\\{2,1\\}", o));
  EXPECT_TRUE(eq("[1,2)", "[1, 2)"));
  EXPECT_FALSE(eq("[1,2)", "(1,2)"));
  EXPECT_FALSE(eq("[1,2]", "[1,2)"));
  EXPECT_TRUE(eq("(-\\infty, 3]", "x \\le 3"));
  EXPECT_TRUE(eq("(3, \\infty)", "x > 3"));
  EXPECT_TRUE(eq("[1, 5)", "1 \\le x < 5"));
  EXPECT_TRUE(eq("(-\\infty,1)\\cup(2,\\infty)", "(2,\\infty)\\cup(-\\infty,1)"));
  EXPECT_FALSE(eq("(-\\infty,1)\\cup(2,\\infty)", "(-\\infty,1]\\cup(2,\\infty)"));
  EXPECT_TRUE(eq("\\emptyset", "\\varnothing"));
}

TEST(MathStructure, MultipleAnswersAndPlusMinus) {
  EXPECT_TRUE(eq("1, 2", "2, 1"));
  EXPECT_TRUE(eq("1,2", "1 \\text{ and } 2"));
  EXPECT_FALSE(eq("1,2", "1"));
  EXPECT_TRUE(eq("1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}"));
  EXPECT_TRUE(eq("\\pm 3", "3, -3"));
  EXPECT_FALSE(eq("1 \\pm \\sqrt{2}", "1+\\sqrt{2}"));
  EXPECT_TRUE(eq("x = 1 \\pm \\sqrt{2}", "1-\\sqrt2, 1+\\sqrt2"));
}

TEST(MathStructure, Equations) {
  EXPECT_TRUE(eq("3", "x = 3"));
  EXPECT_TRUE(eq("x=3", "3"));
  EXPECT_TRUE(eq("y = 2x + 1", "y = 1 + 2x"));
  EXPECT_TRUE(eq("x^2 + y^2 = 1", "2x^2 + 2y^2 = 2"));
  EXPECT_FALSE(eq("x^2 + y^2 = 1", "x^2 + y^2 = 2"));
  EXPECT_TRUE(eq("2x+1", "y=2x+1"));
  MathOptions o;
  o.equation_rhs = false;
  EXPECT_FALSE(eq("3", "x = 3", o));
}

TEST(MathStructure, Matrices) {
  EXPECT_TRUE(eq("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
                 "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"));
  EXPECT_TRUE(eq("\\begin{pmatrix} \\frac12 \\\\ 2 \\end{pmatrix}",
                 "\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}"));
  EXPECT_FALSE(eq("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}",
                  "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"));
  EXPECT_FALSE(
      eq("\\begin{pmatrix} 1 & 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"));
}

TEST(MathSymbolic, Equivalence) {
  EXPECT_TRUE(eq("(x+1)^2", "x^2 + 2x + 1"));
  EXPECT_FALSE(eq("(x+1)^2", "x^2 + 1"));
  EXPECT_TRUE(eq("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"));
  EXPECT_TRUE(eq("2\\sqrt{2}", "\\sqrt{8}"));
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\sin(\\pi/6)"));
  EXPECT_TRUE(eq("\\frac{\\sqrt3}{2}", "\\cos 30^\\circ") == false);  // degrees are dropped
  EXPECT_TRUE(eq("\\sqrt[3]{-8}", "-2"));
  EXPECT_TRUE(eq("\\binom{5}{2}", "10"));
  EXPECT_TRUE(eq("5!", "120"));
  EXPECT_TRUE(eq("\\log_2 8", "3"));
  EXPECT_TRUE(eq("\\log 100", "2"));  // \log without a base is base 10
  EXPECT_TRUE(eq("2\\sin x \\cos x", "\\sin 2x"));
  EXPECT_FALSE(eq("\\sin x", "\\sin 2x"));
  EXPECT_TRUE(eq("3", "\\boxed{3}"));
  EXPECT_TRUE(eq("a_1 + a_2", "a_2 + a_1"));
  EXPECT_FALSE(eq("x + 1", "y + 1"));
  EXPECT_TRUE(eq("\\frac{x^2-1}{x-1}", "x+1"));
}

TEST(MathText, Choices) {
  EXPECT_TRUE(eq("\\text{(A)}", "A"));
  EXPECT_TRUE(eq("\\text{Evelyn}", "Evelyn"));
  EXPECT_FALSE(eq("\\text{Evelyn}", "Bob"));
  EXPECT_TRUE(eq("\\text{yes}", "Yes"));
}

TEST(MathPolicy, UnreducedFractions) {
  MathOptions o;
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\frac{2}{4}", o));
  o.allow_unreduced_fractions = false;
  EXPECT_FALSE(eq("\\frac{1}{2}", "\\frac{2}{4}", o));
  EXPECT_TRUE(eq("\\frac{1}{2}", "\\frac{1}{2}", o));
  EXPECT_FALSE(eq("3", "\\frac{3}{1}", o));
}

TEST(MathPolicy, Tolerance) {
  MathOptions o;
  EXPECT_FALSE(eq("3.14159", "3.1416", o));
  o.rel_tol = 1e-4;
  EXPECT_TRUE(eq("3.14159", "3.1416", o));
}

TEST(MathGuards, HugeAndHostileInputsFinish) {
  MathOptions o;
  std::string deep(5000, '(');
  EXPECT_FALSE(eq("1", deep + "1" + std::string(5000, ')'), o));
  std::string nest;
  for (int i = 0; i < 100; ++i) nest += "\\frac{1}{";
  EXPECT_FALSE(eq("1", nest, o));
  EXPECT_FALSE(eq("1", "10^{10^{10^{10}}}", o));
  EXPECT_FALSE(eq("1", "1000000!", o));
  EXPECT_FALSE(eq("1", "", o));
  EXPECT_FALSE(eq("1", "\\frac{", o));
  EXPECT_FALSE(eq("1", std::string(100000, '1'), o));
}

TEST(MathPolicy, Guards) {
  MathOptions o;
  o.max_answer_chars = 5;
  EXPECT_FALSE(eq("123456", "123456", o));
  o = MathOptions{};
  o.max_nodes = 3;
  EXPECT_FALSE(eq("10", "1+2+3+4", o));
  EXPECT_TRUE(eq("10", "10.0", o));
  o = MathOptions{};
  o.time_limit_ms = 1e-9;  // expired before the comparison starts
  EXPECT_FALSE(eq("(x+1)^2", "x^2+2x+1", o));
}

// Random soup of answer fragments: every input must return (true or false), never throw or crash.
TEST(MathGuards, FragmentSoupNeverThrows) {
  const std::vector<std::string> parts = {"\\frac",
                                          "{",
                                          "}",
                                          "(",
                                          ")",
                                          "[",
                                          "]",
                                          "\\{",
                                          "\\}",
                                          "1",
                                          "23",
                                          ".5",
                                          "x",
                                          "y_1",
                                          "^",
                                          "_",
                                          "-",
                                          "+",
                                          "\\pm",
                                          "=",
                                          "<",
                                          "\\le",
                                          ",",
                                          "\\sqrt",
                                          "\\sin",
                                          "\\log",
                                          "!",
                                          "%",
                                          "\\text{cm}",
                                          "\\pi",
                                          "e",
                                          "i",
                                          "\\infty",
                                          "\\cup",
                                          "\\begin{pmatrix}",
                                          "&",
                                          "\\\\",
                                          "\\end{pmatrix}",
                                          "|",
                                          "\\left(",
                                          "\\right)",
                                          "\\boxed{",
                                          "$",
                                          "\\lfloor",
                                          "\\rfloor",
                                          "\\binom",
                                          "\\langle",
                                          "\\rangle",
                                          "and",
                                          "\\circ",
                                          "0",
                                          "1e",
                                          "\\"};
  unsigned state = 12345;
  auto next = [&state] { return state = state * 1103515245u + 12345u; };
  for (int n = 0; n < 3000; ++n) {
    std::string a, b;
    for (int k = static_cast<int>(next() % 12); k > 0; --k) a += parts[next() % parts.size()];
    for (int k = static_cast<int>(next() % 12); k > 0; --k) b += parts[next() % parts.size()];
    EXPECT_NO_THROW(math_answers_equal(a, b, MathOptions{})) << a << " | " << b;
  }
}

TEST(MathGuards, ThreadSafe) {
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&ok, t] {
      for (int i = 0; i < 200; ++i) {
        ok[static_cast<size_t>(t)] += math_answers_equal("(x+1)^2", "x^2+2x+1", MathOptions{});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 200);
}

TEST(MathBoxed, RewardFunction) {
  MathBoxedReward r{MathOptions{}};
  Sample s;
  s.answer = "\\frac{1}{2}";
  s.completion = "<think>...</think> so the answer is \\boxed{0.5}.";
  RewardResult res = r.score(s);
  EXPECT_EQ(res.score, 1.0);
  EXPECT_EQ(res.details["extracted"], "0.5");
  s.completion = "the answer is 0.5";
  EXPECT_EQ(r.score(s).score, 0.0);
  EXPECT_TRUE(r.score(s).details["extracted"].is_null());
  MathOptions scaled;
  scaled.correct_score = 2.0;
  scaled.wrong_score = -1.0;
  EXPECT_EQ(MathBoxedReward(scaled).score(s).score, -1.0);  // no answer found
  s.completion = "\\boxed{1/2}";
  EXPECT_EQ(MathBoxedReward(scaled).score(s).score, 2.0);
  s.answer = "solution text ... \\boxed{7}";
  s.completion = "\\boxed{7}";
  EXPECT_EQ(r.score(s).score, 1.0);
}

}  // namespace
}  // namespace grpo::reward
