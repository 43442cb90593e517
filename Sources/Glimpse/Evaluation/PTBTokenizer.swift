import Foundation

/// The caption tokenization of pycocoevalcap (`PTBTokenizer`): Stanford CoreNLP 3.4.1's
/// `PTBTokenizer -preserveLines -lowerCase`, then the tokens in pycocoevalcap's `PUNCTUATIONS`
/// list removed, the rest joined by single spaces.
///
/// The Java tokenizer is a large JFlex lexer; this is the subset of its rules that decides the
/// result on caption text (checked against the real tokenizer on the corpus in
/// `Tests/GlimpseTests/Fixtures/eval/ptb_tokenizer.json`, made by `tools/make_eval_fixtures.py`):
/// - tokens are split at whitespace; `(` `)` `{` `}` `[` `]` become `-lrb-` `-rrb-` `-lcb-` `-rcb-`
///   `-lsb-` `-rsb-` (kept: `-lowerCase` lowercases them, so pycocoevalcap's upper-case
///   `-LRB-` entries never match);
/// - double quotes (`"`, `“`, `”`) become `` `` `` when opening and `''` when closing, single
///   quotes `` ` `` / `'` when opening and `'` when closing; an apostrophe ending a word (`dogs'`) is
///   its own token;
/// - clitics split off: `n't`, `'s`, `'m`, `'d`, `'re`, `'ve`, `'ll` (`can't` → `ca n't`), and
///   `cannot`, `gonna`, `gotta`, `wanna`, `lemme`, `gimme`, `'tis`, `'twas` are split in two;
///   `’` in a clitic is written `'`;
/// - a final period is its own token unless the word is an abbreviation: a single letter, an
///   acronym of letters and periods (`u.s.`, `a.m.`), one of CoreNLP's English titles, company,
///   month, day, state and other abbreviations (case-insensitive), or `no.`/`nos.`/`ca.`/`fig.`/
///   `figs.`/`art.`/`prop.`/`pp.`/`op.`/`bldg.` before a number;
/// - words keep inner hyphens, slashes and periods (`e-mail`, `km/h`, `hi.there`); numbers keep
///   inner `,` `.` `:` (`1,000`, `2.5`, `10:30`); a number directly followed by letters is split
///   (`1.5m` → `1.5 m`);
/// - `--`, `-` (leading or trailing), `...` (three or more periods, or `…`), runs of `?`/`!`,
///   `,` `;` `:` `$` `%` `&` `*` `=` `+` and `#` before a digit are separate tokens; `#word` and
///   `@word` stay whole; an SGML-like `<tag>` is one token;
/// - everything is lower-cased.
/// Not reproduced (not seen in captions): URLs, e-mail addresses, emoticons, fractions like `½`,
/// the "x. . . y" splitting of periods inside words, CoreNLP's Americanization (off in this mode).
public enum PTBTokenizer {
    /// pycocoevalcap's `PUNCTUATIONS`: removed after tokenization.
    static let punctuation: Set<String> = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                                           ".", "?", "!", ",", ":", "-", "--", "...", ";"]

    /// The caption as pycocoevalcap scores it: tokens joined by single spaces.
    public static func tokenize(_ caption: String) -> String {
        tokens(caption).filter { !punctuation.contains($0) }.joined(separator: " ")
    }

    /// All PTB tokens of one line (punctuation included), lower-cased.
    public static func tokens(_ line: String) -> [String] {
        // pycocoevalcap replaces newlines by spaces before tokenizing
        let chunks = line.split(whereSeparator: { $0.isWhitespace || $0 == "\u{00A0}" }).map { Array($0) }
        var out: [String] = []
        for (k, chunk) in chunks.enumerated() {
            let next = k + 1 < chunks.count ? chunks[k + 1].first : nil
            out += lex(chunk, nextChunkStart: next)
        }
        return out.map { $0.lowercased() }
    }

    // MARK: - the lexer

    private static let brackets: [Character: String] = ["(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-",
                                                         "[": "-LSB-", "]": "-RSB-"]
    private static let openers: Set<Character> = ["(", "[", "{", "\"", "“", "'", "‘", "`"]
    private static let single: Set<Character> = [",", ";", ":", "$", "%", "&", "*", "=", "+"]

    private static func isApostrophe(_ c: Character) -> Bool { c == "'" || c == "’" }
    private static func isAlnum(_ c: Character) -> Bool { c.isLetter || c.isNumber }

    private static func lex(_ s: [Character], nextChunkStart: Character?) -> [String] {
        var out: [String] = []
        var i = 0
        func prevIsOpening() -> Bool { i == 0 || openers.contains(s[i - 1]) }
        while i < s.count {
            let c = s[i]
            if c == "<", let end = s[(i + 1)...].firstIndex(of: ">"), end > i + 1, s[i + 1].isLetter || s[i + 1] == "/" {
                out.append(String(s[i...end])); i = end + 1; continue
            }
            if let b = brackets[c] { out.append(b); i += 1; continue }
            if c == "\"" { out.append(prevIsOpening() ? "``" : "''"); i += 1; continue }
            if c == "“" { out.append("``"); i += 1; continue }
            if c == "”" { out.append("''"); i += 1; continue }
            if c == "`" {
                if i + 1 < s.count, s[i + 1] == "`" { out.append("``"); i += 2 } else { out.append("`"); i += 1 }
                continue
            }
            if c == "‘" { out.append("`"); i += 1; continue }
            if isApostrophe(c) {
                let rest = String(s[(i + 1)...]).lowercased()
                if prevIsOpening() {
                    if let n = s[(i + 1)...].first, n.isNumber {   // '90s
                        let (w, j) = scanWord(s, from: i + 1)
                        out.append("'" + w); i = j; continue
                    }
                    if let clitic = ["s", "m", "d", "re", "ve", "ll"].first(where: { rest.hasPrefix($0) && !isAlnumAt(s, i + 1 + $0.count) }) {
                        out.append("'" + String(s[(i + 1)..<(i + 1 + clitic.count)])); i += 1 + clitic.count; continue
                    }
                    if rest.hasPrefix("tis") || rest.hasPrefix("twas"), !isAlnumAt(s, i + (rest.hasPrefix("tis") ? 4 : 5)) {
                        out.append("'t"); i += 2; continue
                    }
                    if rest.hasPrefix("em"), !isAlnumAt(s, i + 3) { out.append("'em"); i += 3; continue }
                    out.append(i == 0 || s[i - 1] != "'" ? "`" : "'"); i += 1; continue
                }
                out.append("'"); i += 1; continue
            }
            if c == "-" {
                if i + 1 < s.count, s[i + 1] == "-" {
                    var j = i
                    while j < s.count, s[j] == "-" { j += 1 }
                    out.append(String(repeating: "-", count: j - i)); i = j
                } else { out.append("-"); i += 1 }
                continue
            }
            if c == "…" { out.append("..."); i += 1; continue }
            if c == "." {
                var j = i
                while j < s.count, s[j] == "." { j += 1 }
                if j - i >= 3 { out.append("...") } else { out += Array(repeating: ".", count: j - i) }
                i = j; continue
            }
            if c == "?" || c == "!" {
                var j = i
                while j < s.count, s[j] == "?" || s[j] == "!" { j += 1 }
                out.append(String(s[i..<j])); i = j; continue
            }
            if c == "#" || c == "@", i + 1 < s.count, s[i + 1].isLetter || (c == "@" && s[i + 1] == "_") {
                let (w, j) = scanWord(s, from: i + 1)
                out.append(String(c) + w); i = j; continue
            }
            if isAlnum(c) {
                let (w, j) = scanWord(s, from: i)
                i = j
                var word = w
                // a final period: kept on abbreviations, else its own token (added by the '.' case next)
                if i < s.count, s[i] == ".", !(i + 2 < s.count && s[i + 1] == "." && s[i + 2] == "."),
                   !(i + 1 < s.count && s[i + 1] == ".") {
                    let atChunkEnd = i + 1 == s.count
                    let nextIsNumber = atChunkEnd ? (nextChunkStart?.isNumber ?? false) : s[i + 1].isNumber
                    if isAbbreviation(word, beforeNumber: nextIsNumber) { word += "."; i += 1 }
                }
                // a trailing apostrophe after a word ending in s: "dogs'" -> dogs '
                out += splitWord(word)
                continue
            }
            out.append(String(c)); i += 1
        }
        return out
    }

    private static func isAlnumAt(_ s: [Character], _ i: Int) -> Bool { i < s.count && isAlnum(s[i]) }

    /// A word: letters and digits with inner hyphens, slashes, periods and apostrophes (each followed
    /// by a letter or digit), and inner commas and colons between digits.
    private static func scanWord(_ s: [Character], from start: Int) -> (String, Int) {
        var j = start
        while j < s.count {
            let c = s[j]
            if isAlnum(c) || c == "_" { j += 1; continue }
            if j + 1 < s.count, j > start {
                let n = s[j + 1]
                if (c == "-" || c == "/" || c == ".") && isAlnum(n) { j += 1; continue }
                if isApostrophe(c) && n.isLetter { j += 1; continue }
                if (c == "," || c == ":") && s[j - 1].isNumber && n.isNumber { j += 1; continue }
            }
            break
        }
        return (String(s[start..<j]), j)
    }

    /// Clitics and the number+letters split of one scanned word.
    private static func splitWord(_ word: String) -> [String] {
        let chars = Array(word)
        // 1.5m -> 1.5 m (a number with a decimal point or comma, then letters)
        if let first = chars.first, first.isNumber, let sep = chars.firstIndex(where: { $0 == "." || $0 == "," }),
           sep + 1 < chars.count, chars[sep + 1].isNumber,
           let letter = chars[sep...].firstIndex(where: { $0.isLetter }), !chars[letter...].contains(".") {
            return [String(chars[..<letter])] + splitWord(String(chars[letter...]))
        }
        let lower = word.lowercased().replacingOccurrences(of: "’", with: "'")
        let specials: [String: Int] = ["cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "lemme": 3, "gimme": 3]
        if let cut = specials[lower] { return [String(chars[..<cut]), String(chars[cut...])] }
        if lower.count > 3, lower.hasSuffix("n't") {
            return [String(chars[..<(chars.count - 3)]), "n't"]
        }
        for clitic in ["'s", "'m", "'d", "'re", "'ve", "'ll"] where lower.count > clitic.count && lower.hasSuffix(clitic) {
            let cut = chars.count - clitic.count
            return [String(chars[..<cut]), "'" + String(chars[(cut + 1)...])]
        }
        if let a = chars.firstIndex(where: isApostrophe) {
            // rock'n'roll -> rock 'n' roll; y'all -> y' all; other inner apostrophes (o'clock) stay
            let l = Array(lower)
            if a + 2 < l.count, l[a + 1] == "n", l[a + 2] == "'" {
                return [String(chars[..<a]), "'n'"] + splitWord(String(chars[(a + 3)...]))
            }
            if lower.hasPrefix("y'") { return ["y'", String(chars[2...])] }
        }
        return [word]
    }

    private static let abbreviations: Set<String> = {
        let months = "jan feb mar apr jun jul aug sep sept oct nov dec"
        let days = "mon tue tues wed thu thurs fri sat sun"
        let states = "ala ariz ark calif colo conn ct dak del fla ga ill ind kan kans ky la mass md mich minn miss mo "
            + "mont neb nev okla ore pa penn tenn tex va vt wash wis wisc wyo"
        let companies = "inc co cos corp pty ptys ppty pptys ltd plc bancorp dept bhd assn univ intl sys invt elec natl mfg mtg"
        let other = "tel est ext sq jr sr bros blvd rd esq etc al seq vs alex wm jos cie cf treas ft ed.d ph.d a.k.a"
        let titles = "mr mrs ms miss dr drs prof profs sen sens rep reps atty attys lt col gen messrs gov govs adm rev maj "
            + "sgt cpl pvt mt capt st ste ave pres lieut hon brig cmdr comdr pfc spc supt supts det m mm mme mmes mlle mlles"
        return Set([months, days, states, companies, other, titles].joined(separator: " ").split(separator: " ").map(String.init))
    }()
    private static let numberAbbreviations: Set<String> = ["no", "nos", "ca", "fig", "figs", "art", "prop", "pp", "op", "bldg"]

    private static func isAbbreviation(_ word: String, beforeNumber: Bool) -> Bool {
        let w = word.lowercased()
        if w.count == 1, w.first?.isLetter == true { return true }
        // acronyms: letters separated by periods (u.s -> u.s., a.m -> a.m.)
        let parts = w.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 1, parts.allSatisfy({ $0.count == 1 && $0.first?.isLetter == true }) { return true }
        if abbreviations.contains(w) { return true }
        return beforeNumber && numberAbbreviations.contains(w)
    }
}
