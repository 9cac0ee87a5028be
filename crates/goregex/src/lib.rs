//! Go's regular-expression syntax (`regexp/syntax` with Perl flags, as Prometheus parses
//! label-matcher and `label_replace` regexes) translated into the `regex` crate's syntax
//! with the same meaning, or refused with Go's error where Go refuses it.
//!
//! Where the two differ: Go's `\d`, `\s`, `\w` and `\b` are ASCII (the crate's are
//! Unicode); Go's `\s` has no `\v`; Go has `\Q…\E` literal spans and octal escapes (`\012`),
//! and knows no `\<`, `\>`, `\e`, `\Z`, `(?x)`, `(?<name>` (before Go 1.22), `x{,n}` (a
//! literal in Go), nested classes or class set operations (`[` and `&&` are literals in a
//! Go class); Go names Unicode classes only by their general category or script, exactly
//! (`\p{Greek}`, not `\p{greek}` or `\p{Letter}`), and its `\p{C}` has no unassigned code
//! points; a `{` that does not start a valid repetition is a literal; repetitions over
//! 1000 and stacked repetitions (`a**`) are errors. The translation is written from the
//! parsed form, so every literal is escaped for the crate and every class is spelled out.
//! Used by the engine's matchers (`strata-tsdb`), `label_replace` (`strata-promql`) and
//! the PromQL parser (vendor/promql-parser, which checks a matcher's regex as Prometheus
//! does); edition 2021, like the parser.

use std::fmt::Write as _;

/// Go's Unicode general categories (`unicode.Categories`).
const CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl",
    "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
];

/// Go 1.19's Unicode scripts (`unicode.Scripts`, Unicode 13).
const SCRIPTS: &[&str] = &[
    "Adlam",
    "Ahom",
    "Anatolian_Hieroglyphs",
    "Arabic",
    "Armenian",
    "Avestan",
    "Balinese",
    "Bamum",
    "Bassa_Vah",
    "Batak",
    "Bengali",
    "Bhaiksuki",
    "Bopomofo",
    "Brahmi",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Carian",
    "Caucasian_Albanian",
    "Chakma",
    "Cham",
    "Cherokee",
    "Chorasmian",
    "Common",
    "Coptic",
    "Cuneiform",
    "Cypriot",
    "Cyrillic",
    "Deseret",
    "Devanagari",
    "Dives_Akuru",
    "Dogra",
    "Duployan",
    "Egyptian_Hieroglyphs",
    "Elbasan",
    "Elymaic",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Gothic",
    "Grantha",
    "Greek",
    "Gujarati",
    "Gunjala_Gondi",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanifi_Rohingya",
    "Hanunoo",
    "Hatran",
    "Hebrew",
    "Hiragana",
    "Imperial_Aramaic",
    "Inherited",
    "Inscriptional_Pahlavi",
    "Inscriptional_Parthian",
    "Javanese",
    "Kaithi",
    "Kannada",
    "Katakana",
    "Kayah_Li",
    "Kharoshthi",
    "Khitan_Small_Script",
    "Khmer",
    "Khojki",
    "Khudawadi",
    "Lao",
    "Latin",
    "Lepcha",
    "Limbu",
    "Linear_A",
    "Linear_B",
    "Lisu",
    "Lycian",
    "Lydian",
    "Mahajani",
    "Makasar",
    "Malayalam",
    "Mandaic",
    "Manichaean",
    "Marchen",
    "Masaram_Gondi",
    "Medefaidrin",
    "Meetei_Mayek",
    "Mende_Kikakui",
    "Meroitic_Cursive",
    "Meroitic_Hieroglyphs",
    "Miao",
    "Modi",
    "Mongolian",
    "Mro",
    "Multani",
    "Myanmar",
    "Nabataean",
    "Nandinagari",
    "New_Tai_Lue",
    "Newa",
    "Nko",
    "Nushu",
    "Nyiakeng_Puachue_Hmong",
    "Ogham",
    "Ol_Chiki",
    "Old_Hungarian",
    "Old_Italic",
    "Old_North_Arabian",
    "Old_Permic",
    "Old_Persian",
    "Old_Sogdian",
    "Old_South_Arabian",
    "Old_Turkic",
    "Oriya",
    "Osage",
    "Osmanya",
    "Pahawh_Hmong",
    "Palmyrene",
    "Pau_Cin_Hau",
    "Phags_Pa",
    "Phoenician",
    "Psalter_Pahlavi",
    "Rejang",
    "Runic",
    "Samaritan",
    "Saurashtra",
    "Sharada",
    "Shavian",
    "Siddham",
    "SignWriting",
    "Sinhala",
    "Sogdian",
    "Sora_Sompeng",
    "Soyombo",
    "Sundanese",
    "Syloti_Nagri",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tai_Le",
    "Tai_Tham",
    "Tai_Viet",
    "Takri",
    "Tamil",
    "Tangut",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Tirhuta",
    "Ugaritic",
    "Vai",
    "Wancho",
    "Warang_Citi",
    "Yezidi",
    "Yi",
    "Zanabazar_Square",
];

/// Go's POSIX class names (`[[:alpha:]]`); the crate has the same ASCII sets.
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "word", "xdigit",
];

/// Largest repetition count Go accepts.
const MAX_REPEAT: u32 = 1000;

/// Translates the Go regex `src` into the `regex` crate's syntax with the same meaning
/// (unanchored, as given). The error is Go's: `error parsing regexp: <what>: `<where>``.
pub fn translate(src: &str) -> Result<String, String> {
    Parser { src, pos: 0, out: String::with_capacity(src.len() + 8), names: Vec::new() }.run()
}

/// A label matcher's regex as Prometheus compiles it: `src` must parse on its own (so
/// `a)|(b` is refused), and then `^(?s:src)$` (so `\Qa` is refused: its literal span eats
/// the closing parenthesis) is translated, fully anchored, `.` matching newlines as in
/// Prometheus 3.
pub fn translate_anchored(src: &str) -> Result<String, String> {
    translate(src)?;
    translate(&format!("^(?s:{src})$"))
}

/// Go's error text for `code` at `text`.
fn err(code: &str, text: &str) -> String {
    format!("error parsing regexp: {code}: `{text}`")
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    out: String,
    names: Vec<String>,
}

/// One item of a character class: a range of code points or a class written out for the
/// crate (`[0-9]`, `\p{sc=Greek}`, `[:alpha:]`).
enum ClassItem {
    Range(u32, u32),
    Nested(String),
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        let src: &'a str = self.src;
        &src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn run(mut self) -> Result<String, String> {
        // positions in `out` of each open group's start
        let mut depth = 0usize;
        // whether there is an operand a repetition may apply to, and where it ends in `out`
        let mut operand: Option<usize> = None;
        // the source from the last repetition operator, when the previous token was one
        let mut last_repeat: Option<usize> = None;
        while let Some(c) = self.peek() {
            let start = self.pos;
            let mut repeat = None;
            match c {
                '(' => {
                    self.pos += 1;
                    if self.rest().starts_with('?') {
                        // flags alone change no operand
                        if let Some(open) = self.group_flags(start)? {
                            self.out.push_str(&open);
                            depth += 1;
                            operand = None;
                        }
                    } else {
                        self.out.push('(');
                        depth += 1;
                        operand = None;
                    }
                }
                ')' => {
                    if depth == 0 {
                        return Err(err("unexpected )", self.src));
                    }
                    self.pos += 1;
                    depth -= 1;
                    self.out.push(')');
                    operand = Some(self.out.len());
                }
                '|' => {
                    self.pos += 1;
                    self.out.push('|');
                    operand = None;
                }
                '*' | '+' | '?' | '{' => {
                    let (op, after) = if c == '{' {
                        match self.parse_repeat() {
                            Some(r) => r,
                            None => {
                                // not a repetition: a literal `{`
                                self.pos += 1;
                                self.literal('{');
                                operand = Some(self.out.len());
                                last_repeat = None;
                                continue;
                            }
                        }
                    } else {
                        (c.to_string(), self.pos + 1)
                    };
                    let mut op = op;
                    let mut after = after;
                    if c == '{' {
                        let text = &self.src[start..after];
                        let bad = |n: &str| !n.parse::<u32>().is_ok_and(|n| n <= MAX_REPEAT);
                        let inner = &text[1..text.len() - 1];
                        let (lo, hi) = inner.split_once(',').unwrap_or((inner, inner));
                        let too_big = bad(lo) || (!hi.is_empty() && bad(hi));
                        let inverted = !hi.is_empty()
                            && !too_big
                            && lo.parse::<u32>().unwrap_or(0) > hi.parse::<u32>().unwrap_or(0);
                        if too_big || inverted {
                            return Err(err("invalid repeat count", text));
                        }
                    }
                    if self.src[after..].starts_with('?') {
                        op.push('?');
                        after += 1;
                    }
                    if let Some(last) = last_repeat {
                        return Err(err("invalid nested repetition operator", &self.src[last..after]));
                    }
                    let Some(end) = operand else {
                        return Err(err("missing argument to repetition operator", &self.src[start..after]));
                    };
                    self.pos = after;
                    // after the operand, before any flags set since
                    self.out.insert_str(end, &op);
                    operand = Some(end + op.len());
                    repeat = Some(start);
                }
                '[' => {
                    self.class()?;
                    operand = Some(self.out.len());
                }
                '.' => {
                    self.pos += 1;
                    self.out.push('.');
                    operand = Some(self.out.len());
                }
                '^' | '$' => {
                    self.pos += 1;
                    let _ = write!(self.out, "(?:{c})");
                    operand = Some(self.out.len());
                }
                '\\' => {
                    // an empty `\Q\E` leaves the operand as it was
                    if self.escape_outside()? {
                        operand = Some(self.out.len());
                    }
                }
                c => {
                    self.pos += c.len_utf8();
                    self.literal(c);
                    operand = Some(self.out.len());
                }
            }
            last_repeat = repeat;
        }
        if depth > 0 {
            return Err(err("missing closing )", self.src));
        }
        Ok(self.out)
    }

    /// A literal character, escaped for the crate.
    fn literal(&mut self, c: char) {
        push_char(&mut self.out, c as u32);
    }

    /// After `(` with `?` next: a named group's opening (`Some`), or flags (`None`, the
    /// flags written out), or Go's error.
    fn group_flags(&mut self, start: usize) -> Result<Option<String>, String> {
        let t = self.rest();
        if t.len() > 3 && t.starts_with("?P<") {
            let Some(end) = t.find('>') else {
                return Err(err("invalid named capture", &self.src[start..]));
            };
            let name = &t[3..end];
            let capture = &self.src[start..self.pos + end + 1];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err("invalid named capture", capture));
            }
            // Go 1.19 allows a name twice, the crate does not, nor one starting with a
            // digit: those groups stay numbered only
            let rust_ok = !name.as_bytes()[0].is_ascii_digit() && !self.names.iter().any(|n| n == name);
            self.names.push(name.to_owned());
            self.pos += end + 1;
            return Ok(Some(if rust_ok { format!("(?P<{name}>") } else { "(".into() }));
        }
        // flags: [imsU]*(-[imsU]+)?[:)]
        self.pos += 1;
        let (mut on, mut off) = (String::new(), String::new());
        let mut negated = false;
        let mut saw = false;
        while let Some(c) = self.next() {
            match c {
                'i' | 'm' | 's' | 'U' => {
                    saw = true;
                    if negated {
                        off.push(c)
                    } else {
                        on.push(c)
                    }
                }
                '-' if !negated => {
                    negated = true;
                    saw = false;
                }
                ':' | ')' if !negated || saw => {
                    let flags = if off.is_empty() { on } else { format!("{on}-{off}") };
                    if c == ':' {
                        return Ok(Some(if flags.is_empty() { "(?:".into() } else { format!("(?{flags}:") }));
                    }
                    if !flags.is_empty() {
                        let _ = write!(self.out, "(?{flags})");
                    }
                    return Ok(None);
                }
                _ => break,
            }
        }
        Err(err("invalid or unsupported Perl syntax", &self.src[start..self.pos]))
    }

    /// `{n}`, `{n,}` or `{n,m}` at the current position as Go's `parseRepeat` reads it
    /// (digits without leading zeros; a count too large is kept, to be refused), and the
    /// position after it; `None` when the `{` is a literal.
    fn parse_repeat(&self) -> Option<(String, usize)> {
        let t = &self.rest()[1..];
        let int = |s: &str| -> Option<usize> {
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 || (n >= 2 && s.starts_with('0')) {
                return None;
            }
            Some(n)
        };
        let n = int(t)?;
        let mut i = n;
        if t[i..].starts_with(',') {
            i += 1;
            if !t[i..].starts_with('}') {
                i += int(&t[i..])?;
            }
        }
        if !t[i..].starts_with('}') {
            return None;
        }
        let text = &self.rest()[..i + 2];
        // a count Go reads as too large (over 8 digits) is refused by the caller's check
        Some((text.to_owned(), self.pos + i + 2))
    }

    /// A backslash outside a class; whether it wrote anything (an empty `\Q\E` does not).
    fn escape_outside(&mut self) -> Result<bool, String> {
        let start = self.pos;
        let t = &self.rest()[1..];
        let Some(c) = t.chars().next() else {
            return Err(err("trailing backslash at end of expression", ""));
        };
        match c {
            'A' => self.out.push_str(r"\A"),
            'z' => self.out.push_str(r"\z"),
            'b' => self.out.push_str(r"(?-u:\b)"),
            'B' => self.out.push_str(r"(?-u:\B)"),
            'Q' => {
                let lit = &t[1..];
                let (lit, used) = match lit.find(r"\E") {
                    Some(i) => (&lit[..i], 2 + i + 2),
                    None => (lit, 2 + lit.len()),
                };
                for ch in lit.chars() {
                    push_char(&mut self.out, ch as u32);
                }
                self.pos = start + used;
                return Ok(!lit.is_empty());
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push_str(&perl_class(c));
                self.pos += 2;
                return Ok(true);
            }
            'p' | 'P' => {
                let class = self.unicode_class()?;
                self.out.push_str(&class);
                return Ok(true);
            }
            _ => {
                let r = self.escape()?;
                push_char(&mut self.out, r);
                return Ok(true);
            }
        }
        self.pos += 2;
        Ok(true)
    }

    /// Go's `parseEscape` at a backslash: the code point it stands for.
    fn escape(&mut self) -> Result<u32, String> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.next() else {
            return Err(err("trailing backslash at end of expression", ""));
        };
        let bad = |p: &Self| err("invalid escape sequence", &p.src[start..p.pos]);
        let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
        match c {
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
            '1'..='7' if octal(self.peek()).is_none() => Err(bad(self)),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    let Some(d) = octal(self.peek()) else { break };
                    self.pos += 1;
                    r = r * 8 + (d as u32 - '0' as u32);
                }
                Ok(r)
            }
            'x' => {
                let Some(c) = self.next() else { return Err(bad(self)) };
                if c == '{' {
                    let mut r: u32 = 0;
                    let mut n = 0;
                    loop {
                        let Some(c) = self.next() else { return Err(bad(self)) };
                        if c == '}' {
                            break;
                        }
                        let Some(v) = c.to_digit(16) else { return Err(bad(self)) };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            return Err(bad(self));
                        }
                        n += 1;
                    }
                    if n == 0 {
                        return Err(bad(self));
                    }
                    return Ok(r);
                }
                let x = c.to_digit(16);
                let Some(c) = self.next() else { return Err(bad(self)) };
                match (x, c.to_digit(16)) {
                    (Some(x), Some(y)) => Ok(x * 16 + y),
                    _ => Err(bad(self)),
                }
            }
            'a' => Ok(7),
            'f' => Ok(12),
            'n' => Ok(10),
            'r' => Ok(13),
            't' => Ok(9),
            'v' => Ok(11),
            _ => Err(bad(self)),
        }
    }

    /// `\pX`, `\p{Name}`, `\p{^Name}` or the `\P` forms at a backslash, as the crate's
    /// class (Go's categories and scripts only, by their exact names).
    fn unicode_class(&mut self) -> Result<String, String> {
        let start = self.pos;
        let mut negated = self.rest().as_bytes()[1] == b'P';
        self.pos += 2;
        let name = match self.next() {
            None => return Err(err("invalid character class range", &self.src[start..])),
            Some('{') => {
                let Some(end) = self.rest().find('}') else {
                    return Err(err("invalid character class range", &self.src[start..]));
                };
                let name = &self.src[self.pos..self.pos + end];
                self.pos += end + 1;
                name
            }
            Some(c) => &self.src[self.pos - c.len_utf8()..self.pos],
        };
        let name = match name.strip_prefix('^') {
            Some(n) => {
                negated = !negated;
                n
            }
            None => name,
        };
        let p = if negated { 'P' } else { 'p' };
        if name == "Any" {
            return Ok(if negated { r"[^\x{0}-\x{10FFFF}]".into() } else { r"[\x{0}-\x{10FFFF}]".into() });
        }
        let neg = if negated { "^" } else { "" };
        if name == "C" {
            // Go's C is Cc, Cf, Co and Cs (no unassigned code points); a string holds no
            // surrogates
            return Ok(format!(r"[{neg}\p{{gc=Cc}}\p{{gc=Cf}}\p{{gc=Co}}]"));
        }
        if name == "Cs" {
            // surrogates, which a string cannot hold (the crate refuses the class)
            let not = if negated { "" } else { "^" };
            return Ok(format!(r"[{not}\x{{0}}-\x{{10FFFF}}]"));
        }
        if CATEGORIES.contains(&name) {
            return Ok(format!(r"\{p}{{gc={name}}}"));
        }
        if SCRIPTS.contains(&name) {
            return Ok(format!(r"\{p}{{sc={name}}}"));
        }
        Err(err("invalid character class range", &self.src[start..self.pos]))
    }

    /// A character class at `[`, parsed as Go parses it (`[` and `&&` are literals; `]`
    /// first is a literal; `-` is a literal first, last or after a range) and written out.
    fn class(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1;
        let negated = self.rest().starts_with('^');
        if negated {
            self.pos += 1;
        }
        let missing = |p: &Self| err("missing closing ]", &p.src[start..]);
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else { return Err(missing(self)) };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            let item_start = self.pos;
            // [:alpha:]
            if let Some(end) = self.rest().strip_prefix("[:").and_then(|r| r.find(":]")) {
                let name = &self.rest()[2..2 + end];
                let text = &self.src[item_start..item_start + end + 4];
                let bare = name.strip_prefix('^').unwrap_or(name);
                if !POSIX.contains(&bare) {
                    return Err(err("invalid character class range", text));
                }
                items.push(ClassItem::Nested(format!("[:{name}:]")));
                self.pos += end + 4;
                continue;
            }
            if self.rest().starts_with('\\') {
                match self.rest()[1..].chars().next() {
                    Some(p @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                        items.push(ClassItem::Nested(perl_class(p)));
                        self.pos += 2;
                        continue;
                    }
                    Some('p' | 'P') => {
                        let class = self.unicode_class()?;
                        items.push(ClassItem::Nested(class));
                        continue;
                    }
                    _ => {}
                }
            }
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.rest().starts_with('-') && !self.rest()[1..].starts_with(']') && self.rest().len() > 1 {
                self.pos += 1;
                hi = self.class_char(start)?;
                if hi < lo {
                    return Err(err("invalid character class range", &self.src[item_start..self.pos]));
                }
            }
            items.push(ClassItem::Range(lo, hi));
        }
        self.out.push('[');
        if negated {
            self.out.push('^');
        }
        let mut any = false;
        for item in items {
            match item {
                ClassItem::Nested(s) => {
                    self.out.push_str(&s);
                    any = true;
                }
                ClassItem::Range(lo, hi) => {
                    // surrogates (which `\x{D800}` can name in Go) match nothing in a string
                    let (lo, hi) = (
                        if (0xD800..0xE000).contains(&lo) { 0xE000 } else { lo },
                        if (0xD800..0xE000).contains(&hi) { 0xD7FF } else { hi },
                    );
                    if lo > hi {
                        continue;
                    }
                    push_char(&mut self.out, lo);
                    if hi > lo {
                        self.out.push('-');
                        push_char(&mut self.out, hi);
                    }
                    any = true;
                }
            }
        }
        if !any {
            // a class of surrogates only: matches nothing
            self.out.push_str(r"[^\x{0}-\x{10FFFF}]");
        }
        self.out.push(']');
        Ok(())
    }

    /// One character of a class (Go's `parseClassChar`).
    fn class_char(&mut self, class_start: usize) -> Result<u32, String> {
        match self.peek() {
            None => Err(err("missing closing ]", &self.src[class_start..])),
            Some('\\') => self.escape(),
            Some(c) => {
                self.pos += c.len_utf8();
                Ok(c as u32)
            }
        }
    }
}

/// Go's ASCII `\d`, `\s`, `\w` and their negations as the crate's classes.
fn perl_class(c: char) -> String {
    let (neg, set) = match c {
        'd' => ("", "0-9"),
        'D' => ("^", "0-9"),
        's' => ("", r"\t\n\x0C\r "),
        'S' => ("^", r"\t\n\x0C\r "),
        'w' => ("", "0-9A-Za-z_"),
        _ => ("^", "0-9A-Za-z_"),
    };
    format!("[{neg}{set}]")
}

/// A code point as a literal for the crate: escaped where it is special, `\x{…}` where it
/// is not printable; a surrogate (Go lets `\x{D800}` name one) as a class matching nothing.
fn push_char(out: &mut String, c: u32) {
    match char::from_u32(c) {
        None => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        Some(ch) if ch.is_ascii_graphic() || ch == ' ' => {
            out.push_str(&regex::escape(ch.encode_utf8(&mut [0; 4])))
        }
        Some(ch) if !ch.is_control() && !ch.is_whitespace() => out.push(ch),
        Some(_) => {
            let _ = write!(out, r"\x{{{c:X}}}");
        }
    }
}
