//! Post-processing per language on realistic code: each case is a document with `$0` at
//! the cursor and a raw model answer; the snapshot shows the mode decided for the cursor
//! and the text the editor would show, every line behind a `|` so indentation and a final
//! line break stay visible.

use super::*;
use proptest::prelude::*;

/// Splits a fixture at its `$0` cursor marker.
#[track_caller]
pub(crate) fn split_cursor(fixture: &str) -> (&str, &str) {
    fixture
        .split_once("$0")
        .unwrap_or_else(|| panic!("fixture has no $0 cursor: {fixture:?}"))
}

#[track_caller]
fn check(language: Option<Language>, fixture: &str, answer: &str) -> String {
    let (prefix, suffix) = split_cursor(fixture);
    let mode = completion_mode(language, prefix, suffix);
    let shown = postprocess(&PostprocessInput {
        language,
        prefix,
        suffix,
        suggestion: answer,
        mode,
    });
    let mode = match mode {
        CompletionMode::SingleLine => "single-line",
        CompletionMode::MultiLine => "multi-line",
    };
    match shown {
        None => format!("{mode}: no suggestion"),
        Some(text) => {
            let lines: Vec<String> = text.split('\n').map(visible_line).collect();
            format!("{mode}:\n{}", lines.join("\n"))
        }
    }
}

/// A line behind a `|`, its trailing spaces and tabs (the kept indentation before a
/// suffix closer) shown as `·` and `→`, which snapshot comparison would otherwise ignore.
fn visible_line(line: &str) -> String {
    let content = line.trim_end_matches([' ', '\t']);
    let trailing: String = line[content.len()..]
        .chars()
        .map(|c| if c == '\t' { '→' } else { '·' })
        .collect();
    format!("|{content}{trailing}")
}

const RUST: Option<Language> = Some(Language::Rust);
const PYTHON: Option<Language> = Some(Language::Python);
const JAVASCRIPT: Option<Language> = Some(Language::JavaScript);
const TYPESCRIPT: Option<Language> = Some(Language::TypeScript);
const GO: Option<Language> = Some(Language::Go);
const JAVA: Option<Language> = Some(Language::Java);
const C: Option<Language> = Some(Language::C);
const CPP: Option<Language> = Some(Language::Cpp);

mod rust {
    use super::*;

    #[test]
    fn closure_body_inside_a_call() {
        let fixture = "fn main() {\n    let names: Vec<String> = users.iter().map(|user| {$0}).collect();\n}\n";
        let answer = "\n        user.name.to_uppercase()\n    }).collect();\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |
            |        user.name.to_uppercase()
            |····
            "#);
    }

    #[test]
    fn closer_missing_from_the_suffix_is_kept() {
        // The user is writing at the end of the file: nothing closes the function yet.
        let fixture =
            "fn main() {\n    let args: Vec<String> = std::env::args().collect();\n    $0";
        let answer = "println!(\"{args:?}\");\n}\n\nfn usage() {\n    eprintln!(\"usage\");\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |println!("{args:?}");
            |}
            "#);
    }

    #[test]
    fn body_stops_at_the_end_of_the_function() {
        let fixture = r#"
fn parse_port(value: &str) -> Result<u16, ConfigError> {
    $0
}

fn parse_host(value: &str) -> String {
    value.trim().to_owned()
}
"#;
        let answer = "value\n        .parse::<u16>()\n        .map_err(|_| ConfigError::BadPort(value.to_owned()))\n}\n\nfn parse_timeout(value: &str) -> Duration {\n    Duration::from_secs(value.parse().unwrap_or(30))\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |value
            |        .parse::<u16>()
            |        .map_err(|_| ConfigError::BadPort(value.to_owned()))
            "#);
    }

    #[test]
    fn empty_braces_on_one_line_get_a_body_on_its_own_lines() {
        let fixture = "impl Default for Limits {\n    fn default() -> Self {$0}\n}\n";
        let answer = "\n        Limits { max_prefix_chars: 8192, max_suffix_chars: 2048 }\n    }\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |
            |        Limits { max_prefix_chars: 8192, max_suffix_chars: 2048 }
            |····
            "#);
    }

    #[test]
    fn closing_paren_already_in_the_suffix_is_dropped() {
        let fixture = "fn main() {\n    let total = checked_add(first, $0);\n}\n";
        let answer = "second).expect(\"overflow\"));";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            single-line:
            |second
            "#);
    }

    #[test]
    fn semicolon_repeating_the_suffix_is_dropped() {
        let fixture = "fn total(items: &[Item]) -> u32 {\n    let sum: u32 = items.iter().map(|item| item.price)$0;\n    sum\n}\n";
        let answer = ".sum();";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            single-line:
            |.sum()
            "#);
    }

    #[test]
    fn body_stops_before_the_line_already_below() {
        let fixture = "fn load(path: &Path) -> Result<Config, Error> {$0\n    Ok(config)\n}\n";
        let answer = "\n    let text = fs::read_to_string(path)?;\n    let config: Config = toml::from_str(&text)?;\n    Ok(config)\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |
            |    let text = fs::read_to_string(path)?;
            |    let config: Config = toml::from_str(&text)?;
            "#);
    }

    #[test]
    fn closing_an_inner_function_when_the_suffix_only_closes_the_impl() {
        // The suffix's `}` is at the `impl`'s indentation: the method is what the model
        // must close.
        let fixture = "impl Cache {\n    fn clear(&mut self) {\n        $0\n}\n";
        let answer = "self.entries.clear();\n        self.hits = 0;\n    }\n\n    fn len(&self) -> usize {\n        self.entries.len()\n    }\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            |self.entries.clear();
            |        self.hits = 0;
            |    }
            "#);
    }

    #[test]
    fn match_arm_after_fat_arrow() {
        let fixture = "fn describe(event: Event) -> String {\n    match event {\n        Event::Key(code) =>$0\n    }\n}\n";
        let answer = " {\n            format!(\"key {code}\")\n        }\n        Event::Mouse(x, y) => format!(\"mouse {x},{y}\"),\n    }\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            multi-line:
            | {
            |            format!("key {code}")
            |        }
            "#);
    }

    #[test]
    fn trailing_whitespace_and_blank_lines_are_trimmed() {
        let fixture = "fn main() {\n    let name = $0\n}\n";
        let answer = "std::env::var(\"USER\").unwrap_or_default();   \n\n";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            single-line:
            |std::env::var("USER").unwrap_or_default();
            "#);
    }

    #[test]
    fn whitespace_only_answer_is_dropped() {
        let fixture = "fn main() {\n    $0\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, "   \n\t\n"), @r#"multi-line: no suggestion"#);
    }

    #[test]
    fn answer_repeating_the_rest_of_the_line_is_dropped() {
        let fixture = "fn main() {\n    let x = $0compute(1, 2);\n}\n";
        insta::assert_snapshot!(check(RUST, fixture, "compute(1, 2);"), @r#"single-line: no suggestion"#);
    }

    #[test]
    fn brackets_in_strings_and_lifetimes_do_not_count() {
        let fixture = "fn quote<'a>(text: &'a str) -> String {\n    format!($0)\n}\n";
        let answer = "\"({})\", text.replace(')', \"\\\\)\")))";
        insta::assert_snapshot!(check(RUST, fixture, answer), @r#"
            single-line:
            |"({})", text.replace(')', "\\)")
            "#);
    }
}

mod python {
    use super::*;

    #[test]
    fn body_stops_at_the_next_top_level_function() {
        let fixture = "import json\n\n\ndef load(path):\n    $0\n";
        let answer = "with open(path) as handle:\n        return json.load(handle)\n\n\ndef save(path, data):\n    with open(path, \"w\") as handle:\n        json.dump(data, handle)\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            multi-line:
            |with open(path) as handle:
            |        return json.load(handle)
            "#);
    }

    #[test]
    fn colon_at_the_end_of_the_line_invites_a_body() {
        let fixture = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):$0\n";
        let answer = "\n        self.items.append(item)\n\n    def pop(self):\n        return self.items.pop()\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            multi-line:
            |
            |        self.items.append(item)
            "#);
    }

    #[test]
    fn else_branch_at_a_lower_indentation_ends_the_block() {
        let fixture = "def sign(x):\n    if x > 0:\n        $0\n";
        let answer = "return 1\n    elif x < 0:\n        return -1\n    return 0\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            multi-line:
            |return 1
            "#);
    }

    #[test]
    fn dedented_lines_inside_a_string_do_not_end_the_block() {
        let fixture = "def users(db):\n    $0\n";
        let answer = "query = \"\"\"\nSELECT id, name\nFROM users\n\"\"\"\n    return db.execute(query)\n\n\ndef main():\n    pass\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            multi-line:
            |query = """
            |SELECT id, name
            |FROM users
            |"""
            |    return db.execute(query)
            "#);
    }

    #[test]
    fn call_arguments_split_over_lines_stay_in_the_block() {
        let fixture = "def main():\n    $0\n";
        let answer = "parser = argparse.ArgumentParser(\ndescription=\"Sync files\",\n)\n    return parser.parse_args()\n\nif __name__ == \"__main__\":\n    main()\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            multi-line:
            |parser = argparse.ArgumentParser(
            |description="Sync files",
            |)
            |    return parser.parse_args()
            "#);
    }

    #[test]
    fn f_string_argument_keeps_the_quotes_and_parens_of_the_suffix() {
        let fixture = "def report(name, value):\n    print(f\"{name}: $0\")\n";
        let answer = "{value:.2f}\")";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            single-line:
            |{value:.2f}
            "#);
    }

    #[test]
    fn dict_value_after_colon_is_single_line() {
        let fixture = "DEFAULTS = {\n    \"timeout\":$0\n}\n";
        let answer = " 30,\n    \"retries\": 3,\n}";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            single-line:
            | 30,
            "#);
    }

    #[test]
    fn docstring_is_completed_on_its_line() {
        let fixture = "def area(r):\n    \"\"\"Return the area of a circle of radius $0\"\"\"\n";
        let answer = "r.\"\"\"\n    return math.pi * r * r\n";
        insta::assert_snapshot!(check(PYTHON, fixture, answer), @r#"
            single-line:
            |r.
            "#);
    }

    #[test]
    fn answer_equal_to_the_next_line_is_dropped() {
        let fixture = "def f(items):\n    total = 0\n    $0\n    return total\n";
        insta::assert_snapshot!(check(PYTHON, fixture, "return total"), @r#"single-line: no suggestion"#);
    }
}

mod javascript {
    use super::*;

    #[test]
    fn arrow_expression_body_stops_at_the_next_statement() {
        let fixture = "const double = (x) =>$0\n";
        let answer = " x * 2;\n\nconst triple = (x) => x * 3;\n";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            multi-line:
            | x * 2;
            "#);
    }

    #[test]
    fn arrow_callback_body_between_auto_closed_braces() {
        let fixture = "const doubled = items.map((item) => {$0});\n";
        let answer = "\n  return item * 2;\n});\n\nconsole.log(doubled);\n";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            multi-line:
            |
            |  return item * 2;
            |
            "#);
    }

    #[test]
    fn function_body_stops_before_the_next_function() {
        let fixture = "function sum(values) {\n  $0\n}\n\nmodule.exports = { sum };\n";
        let answer = "return values.reduce((total, value) => total + value, 0);\n}\n\nfunction mean(values) {\n  return sum(values) / values.length;\n}\n";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            multi-line:
            |return values.reduce((total, value) => total + value, 0);
            "#);
    }

    #[test]
    fn object_literal_stops_at_its_brace() {
        let fixture = "const config = {$0\n};\n";
        let answer = "\n  port: 8080,\n  host: \"localhost\",\n};\n\nmodule.exports = config;\n";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            multi-line:
            |
            |  port: 8080,
            |  host: "localhost",
            "#);
    }

    #[test]
    fn template_string_brackets_are_text() {
        let fixture = "const message = `Hello ${name} ($0)`;\n";
        let answer = "${count} new)`;";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            single-line:
            |${count} new
            "#);
    }

    #[test]
    fn call_arguments_stay_on_the_line() {
        let fixture = "app.listen(PORT, $0);\n";
        let answer = "() => console.log(`listening on ${PORT}`));\napp.use(express.json());";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            single-line:
            |() => console.log(`listening on ${PORT}`)
            "#);
    }

    #[test]
    fn comment_is_completed_on_its_line() {
        let fixture = "function retry(fn) {\n  // Retry with exponential back-off ($0\n}\n";
        let answer = "max 5 attempts)\n  for (let i = 0; i < 5; i++) {";
        insta::assert_snapshot!(check(JAVASCRIPT, fixture, answer), @r#"
            single-line:
            |max 5 attempts)
            "#);
    }
}

mod typescript {
    use super::*;

    #[test]
    fn tsx_component_body() {
        let fixture = "export function Greeting({ name }: Props) {\n  $0\n}\n";
        let answer = "return <p>Hello, {name}! Don't panic.</p>;\n}\n\nexport function Farewell() {\n  return null;\n}\n";
        insta::assert_snapshot!(check(Some(Language::Tsx), fixture, answer), @r#"
            multi-line:
            |return <p>Hello, {name}! Don't panic.</p>;
            "#);
    }

    #[test]
    fn interface_members_stop_at_the_interface_end() {
        let fixture = "export interface User {\n  $0\n}\n";
        let answer =
            "id: string;\n  email: string;\n}\n\nexport interface Team {\n  members: User[];\n}\n";
        insta::assert_snapshot!(check(TYPESCRIPT, fixture, answer), @r#"
            multi-line:
            |id: string;
            |  email: string;
            "#);
    }

    #[test]
    fn method_body_in_a_class() {
        let fixture =
            "class Counter {\n  private count = 0;\n\n  increment(): number {\n    $0\n  }\n}\n";
        let answer = "this.count += 1;\n    return this.count;\n  }\n\n  reset(): void {\n    this.count = 0;\n  }\n";
        insta::assert_snapshot!(check(TYPESCRIPT, fixture, answer), @r#"
            multi-line:
            |this.count += 1;
            |    return this.count;
            "#);
    }

    #[test]
    fn generic_call_argument() {
        let fixture = "const [name, setName] = useState<string>($0);\n";
        insta::assert_snapshot!(check(TYPESCRIPT, fixture, "\"\");"), @r#"
            single-line:
            |""
            "#);
    }

    #[test]
    fn initializer_before_semicolon() {
        let fixture = "function area(r: number): number {\n  const pi: number = $0;\n  return pi * r * r;\n}\n";
        insta::assert_snapshot!(check(TYPESCRIPT, fixture, "Math.PI;"), @r#"
            single-line:
            |Math.PI
            "#);
    }

    #[test]
    fn switch_case_body() {
        let fixture = "function label(kind: Kind): string {\n  switch (kind) {\n    case Kind.File:$0\n  }\n}\n";
        let answer = "\n      return \"file\";\n    case Kind.Directory:\n      return \"directory\";\n  }\n}\n";
        insta::assert_snapshot!(check(TYPESCRIPT, fixture, answer), @r#"
            multi-line:
            |
            |      return "file";
            "#);
    }
}

mod go {
    use super::*;

    #[test]
    fn struct_literal_fields() {
        let fixture = "func defaults() Config {\n\treturn Config{$0}\n}\n";
        let answer = "\n\t\tPort:    8080,\n\t\tTimeout: 30 * time.Second,\n\t}\n}\n";
        insta::assert_snapshot!(check(GO, fixture, answer), @r#"
            multi-line:
            |
            |		Port:    8080,
            |		Timeout: 30 * time.Second,
            |→
            "#);
    }

    #[test]
    fn function_body_with_tabs_stops_at_the_next_function() {
        let fixture = "package main\n\nfunc add(a, b int) int {\n\t$0\n}\n";
        let answer = "return a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n";
        insta::assert_snapshot!(check(GO, fixture, answer), @r#"
            multi-line:
            |return a + b
            "#);
    }

    #[test]
    fn error_check_block_inside_a_function() {
        let fixture = "func load(path string) (*Config, error) {\n\tdata, err := os.ReadFile(path)\n\tif err != nil {$0\n\t}\n\treturn parse(data)\n}\n";
        let answer = "\n\t\treturn nil, fmt.Errorf(\"read %s: %w\", path, err)\n\t}\n\treturn parse(data)\n}\n";
        insta::assert_snapshot!(check(GO, fixture, answer), @r#"
            multi-line:
            |
            |		return nil, fmt.Errorf("read %s: %w", path, err)
            "#);
    }

    #[test]
    fn println_arguments() {
        let fixture = "func main() {\n\tfmt.Println($0)\n}\n";
        insta::assert_snapshot!(check(GO, fixture, "\"total:\", total))"), @r#"
            single-line:
            |"total:", total
            "#);
    }

    #[test]
    fn raw_string_brackets_are_text() {
        let fixture = "var pattern = regexp.MustCompile($0)\n";
        insta::assert_snapshot!(check(GO, fixture, "`^\\((\\d+)$`)"), @r#"
            single-line:
            |`^\((\d+)$`
            "#);
    }

    #[test]
    fn switch_case_stops_at_the_next_case() {
        let fixture = "func name(d Direction) string {\n\tswitch d {\n\tcase North:$0\n\t}\n\treturn \"\"\n}\n";
        let answer = "\n\t\treturn \"north\"\n\tcase South:\n\t\treturn \"south\"\n\t}\n";
        insta::assert_snapshot!(check(GO, fixture, answer), @r#"
            multi-line:
            |
            |		return "north"
            "#);
    }
}

mod java {
    use super::*;

    #[test]
    fn text_block_brackets_are_text() {
        let fixture = "class Query {\n    String sql() {\n        $0\n    }\n}\n";
        let answer =
            "return \"\"\"\n            SELECT count(*) FROM (\n            \"\"\";\n    }\n}\n";
        insta::assert_snapshot!(check(JAVA, fixture, answer), @r#"
            multi-line:
            |return """
            |            SELECT count(*) FROM (
            |            """;
            "#);
    }

    #[test]
    fn method_body_stops_at_the_next_method() {
        let fixture = "public class Account {\n    private long balance;\n\n    public void deposit(long amount) {\n        $0\n    }\n}\n";
        let answer = "if (amount <= 0) {\n            throw new IllegalArgumentException(\"amount\");\n        }\n        balance += amount;\n    }\n\n    public long balance() {\n        return balance;\n    }\n";
        insta::assert_snapshot!(check(JAVA, fixture, answer), @r#"
            multi-line:
            |if (amount <= 0) {
            |            throw new IllegalArgumentException("amount");
            |        }
            |        balance += amount;
            "#);
    }

    #[test]
    fn for_loop_body_opened_at_the_cursor_line() {
        let fixture = "class Sum {\n    static int sum(int[] values) {\n        int total = 0;\n        for (int value : values) {$0\n        return total;\n    }\n}\n";
        let answer = "\n            total += value;\n        }\n        return total;\n    }\n";
        insta::assert_snapshot!(check(JAVA, fixture, answer), @r#"
            multi-line:
            |
            |            total += value;
            |        }
            "#);
    }

    #[test]
    fn string_with_parens_inside_a_call() {
        let fixture =
            "class Log {\n    void f(int n) {\n        System.out.println($0);\n    }\n}\n";
        insta::assert_snapshot!(check(JAVA, fixture, "\"count (\" + n + \")\");"), @r#"
            single-line:
            |"count (" + n + ")"
            "#);
    }

    #[test]
    fn field_initializer_is_single_line() {
        let fixture = "class Limits {\n    private static final int MAX = $0\n}\n";
        let answer = "1024;\n    private static final int MIN = 0;";
        insta::assert_snapshot!(check(JAVA, fixture, answer), @r#"
            single-line:
            |1024;
            "#);
    }
}

mod c {
    use super::*;

    #[test]
    fn if_body_stops_before_the_else_branch() {
        let fixture = "int parse(const char *s) {\n    if (s == NULL) {\n        $0\n    }\n    return atoi(s);\n}\n";
        let answer =
            "errno = EINVAL;\n        return -1;\n    } else {\n        return atoi(s);\n    }\n";
        insta::assert_snapshot!(check(C, fixture, answer), @r#"
            multi-line:
            |errno = EINVAL;
            |        return -1;
            "#);
    }

    #[test]
    fn function_body_keeps_preprocessor_lines_and_stops_at_the_next_function() {
        let fixture = "#include <stdio.h>\n\nint main(void) {\n    $0\n}\n";
        let answer = "int count = 0;\n#ifdef DEBUG\n    printf(\"debug\\n\");\n#endif\n    return count;\n}\n\nstatic int helper(void) {\n    return 1;\n}\n";
        insta::assert_snapshot!(check(C, fixture, answer), @r#"
            multi-line:
            |int count = 0;
            |#ifdef DEBUG
            |    printf("debug\n");
            |#endif
            |    return count;
            "#);
    }

    #[test]
    fn printf_arguments_with_brackets_in_the_format() {
        let fixture = "void show(int x) {\n    printf(\"[%d]\\n\", $0);\n}\n";
        insta::assert_snapshot!(check(C, fixture, "x * 2);"), @r#"
            single-line:
            |x * 2
            "#);
    }

    #[test]
    fn struct_initializer_stops_at_its_brace() {
        let fixture = "static const struct option options[] = {$0\n};\n";
        let answer = "\n    {\"help\", no_argument, 0, 'h'},\n    {0, 0, 0, 0},\n};\n\nint main(void) { return 0; }\n";
        insta::assert_snapshot!(check(C, fixture, answer), @r#"
            multi-line:
            |
            |    {"help", no_argument, 0, 'h'},
            |    {0, 0, 0, 0},
            "#);
    }

    #[test]
    fn comment_with_brackets_is_completed_on_its_line() {
        let fixture = "int clamp(int x) {\n    /* Clamp to [0, $0\n    return x;\n}\n";
        let answer = "255] */\n    if (x < 0) return 0;";
        insta::assert_snapshot!(check(C, fixture, answer), @r#"
            single-line:
            |255] */
            "#);
    }
}

mod cpp {
    use super::*;

    #[test]
    fn class_members_stop_at_the_class_end() {
        let fixture = "class Point {\npublic:\n    $0\n};\n";
        let answer = "Point(double x, double y) : x_(x), y_(y) {}\n    double x() const { return x_; }\n};\n\nclass Line {};\n";
        insta::assert_snapshot!(check(CPP, fixture, answer), @r#"
            multi-line:
            |Point(double x, double y) : x_(x), y_(y) {}
            |    double x() const { return x_; }
            "#);
    }

    #[test]
    fn lambda_body_inside_a_call() {
        let fixture = "void sort_by_age(std::vector<Person>& people) {\n    std::sort(people.begin(), people.end(), [](const Person& a, const Person& b) {$0});\n}\n";
        let answer = "\n        return a.age < b.age;\n    });\n}\n";
        insta::assert_snapshot!(check(CPP, fixture, answer), @r#"
            multi-line:
            |
            |        return a.age < b.age;
            |····
            "#);
    }

    #[test]
    fn digit_separators_are_not_quotes() {
        let fixture = "constexpr long kLimit = 1'000'000;\nlong scaled(long x) { return std::min(x * 3, $0); }\n";
        insta::assert_snapshot!(check(CPP, fixture, "kLimit); }"), @r#"
            single-line:
            |kLimit
            "#);
    }

    #[test]
    fn namespace_function_body() {
        let fixture = "namespace util {\n\ntemplate <typename T>\nT clamp(T value, T low, T high) {\n    $0\n}\n\n}  // namespace util\n";
        let answer = "return std::max(low, std::min(value, high));\n}\n\n}  // namespace util\n";
        insta::assert_snapshot!(check(CPP, fixture, answer), @r#"
            multi-line:
            |return std::max(low, std::min(value, high));
            "#);
    }
}

mod without_a_grammar {
    use super::*;

    #[test]
    fn brace_block_by_bracket_depth() {
        let fixture = "fun main() {\n    $0\n}\n";
        let answer = "println(\"hi\")\n}\n\nfun other() {}\n";
        insta::assert_snapshot!(check(None, fixture, answer), @r#"
            multi-line:
            |println("hi")
            "#);
    }

    #[test]
    fn single_line_call() {
        let fixture = "val x = listOf($0)\n";
        insta::assert_snapshot!(check(None, fixture, "1, 2, 3)\nval y = 2"), @r#"
            single-line:
            |1, 2, 3
            "#);
    }

    #[test]
    fn crlf_answers_keep_their_line_endings() {
        let fixture = "fun main() {$0}\r\n";
        let answer = "\r\n    println(\"hi\")  \r\n}\r\n";
        insta::assert_snapshot!(check(None, fixture, answer).replace('\r', "<CR>"), @r#"
            multi-line:
            |<CR>
            |    println("hi")<CR>
            |
            "#);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Post-processing never panics, and only cuts: every line it returns starts the
    /// corresponding line of the answer, so it cannot invent text.
    #[test]
    fn postprocess_only_cuts(
        language in proptest::option::of(proptest::sample::select(Language::ALL.to_vec())),
        prefix in "(\\PC|[\n\t ({\\[)}\\]\"'`#/*:])*",
        suffix in "(\\PC|[\n\t ({\\[)}\\]\"'`#/*:])*",
        suggestion in "(\\PC|[\n\r\t ({\\[)}\\]\"'`#/*:;,é漢🦀])*",
        multi_line in any::<bool>(),
    ) {
        let mode = if multi_line { CompletionMode::MultiLine } else { CompletionMode::SingleLine };
        let _ = completion_mode(language, &prefix, &suffix);
        let shown = postprocess(&PostprocessInput {
            language,
            prefix: &prefix,
            suffix: &suffix,
            suggestion: &suggestion,
            mode,
        });
        if let Some(shown) = shown {
            prop_assert!(!shown.trim().is_empty());
            let answer_lines: Vec<&str> = suggestion.split('\n').collect();
            let shown_lines: Vec<&str> = shown.split('\n').collect();
            prop_assert!(shown_lines.len() <= answer_lines.len());
            for (shown_line, answer_line) in shown_lines.iter().zip(&answer_lines) {
                let shown_line = shown_line.strip_suffix('\r').unwrap_or(shown_line);
                prop_assert!(
                    answer_line.starts_with(shown_line),
                    "{shown_line:?} does not start {answer_line:?}"
                );
            }
        }
    }
}
