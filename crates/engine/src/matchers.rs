//! String matchers with libsinsp's semantics: `glob` (fnmatch without FNM_PATHNAME), `pmatch`
//! (path prefixes on whole components) and ASCII case-insensitive search.

/// fnmatch(3) without `FNM_PATHNAME`: `*` matches any run including `/`, `?` one character,
/// `[abc]`, `[a-z]`, `[!x]`/`[^x]` a class, `\x` a literal. `fold` adds `FNM_CASEFOLD`.
///
/// Bytes, not characters, as fnmatch in the C locale: `?` matches one byte.
pub fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    glob_at(pattern.as_bytes(), text.as_bytes(), fold)
}

fn eq_char(a: u8, b: u8, fold: bool) -> bool {
    if fold {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Iterative matching with backtracking to the last `*` (linear in practice, no recursion).
fn glob_at(p: &[u8], t: &[u8], fold: bool) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(p, pi, t[ti], fold) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if eq_char(b'[', t[ti], fold) {
                        // An unclosed '[' is a literal.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() => {
                    if eq_char(p[pi + 1], t[ti], fold) {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if eq_char(c, t[ti], fold) {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// A `[...]` class at `p[start]`: whether `c` matches and where the pattern continues.
fn class(p: &[u8], start: usize, c: u8, fold: bool) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        let mut lo = p[i];
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = p[i + 2];
            let (cl, lol, hil) = if fold {
                (
                    c.to_ascii_lowercase(),
                    lo.to_ascii_lowercase(),
                    hi.to_ascii_lowercase(),
                )
            } else {
                (c, lo, hi)
            };
            if lol <= cl && cl <= hil {
                matched = true;
            }
            i += 3;
        } else {
            if eq_char(lo, c, fold) {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// `pmatch`: does `path` lie at or below `prefix`, comparing whole components? Components of
/// `prefix` may hold `*`, `?` and `[...]`.
pub fn path_prefix(prefix: &str, path: &str) -> bool {
    let pre: Vec<&str> = prefix.split('/').filter(|c| !c.is_empty()).collect();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if pre.len() > comps.len() {
        return false;
    }
    pre.iter().zip(&comps).all(|(p, c)| {
        if p.contains(['*', '?', '[']) {
            glob(p, c, false)
        } else {
            p == c
        }
    })
}

/// ASCII case-insensitive substring search (`strcasestr`). `needle_lower` is lower case.
pub fn icontains(haystack: &str, needle_lower: &str) -> bool {
    let h = haystack.as_bytes();
    let n = needle_lower.as_bytes();
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// Byte-sequence search.
pub fn bytes_contain(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_without_pathname() {
        assert!(glob("/etc/*", "/etc/a/b", false), "* crosses /");
        assert!(glob("*.conf", "/etc/x.conf", false));
        assert!(glob("a?c", "abc", false));
        assert!(!glob("a?c", "ac", false));
        assert!(glob("[abc]x", "bx", false));
        assert!(glob("[a-c]x", "cx", false));
        assert!(!glob("[!a-c]x", "cx", false));
        assert!(glob("[^a-c]x", "dx", false));
        assert!(glob("a\\*", "a*", false));
        assert!(!glob("a\\*", "ab", false));
        assert!(glob("*", "", false));
        assert!(!glob("?", "", false));
        assert!(glob("*a*b*c*", "xxaxxbxxcxx", false));
        assert!(!glob("ABC", "abc", false));
        assert!(glob("ABC", "abc", true));
        assert!(glob("[A-C]", "b", true));
        assert!(glob("a[", "a[", false));
        assert!(glob("/usr/bin/*ssh*", "/usr/bin/openssh-server", false));
    }

    #[test]
    fn path_prefix_on_components() {
        assert!(path_prefix("/opt/dir", "/opt/dir"));
        assert!(path_prefix("/opt/dir", "/opt/dir/x"));
        assert!(!path_prefix("/opt/dir", "/opt/dir2"));
        assert!(!path_prefix("/opt/dir", "/opt"));
        assert!(path_prefix("/opt/*/bin", "/opt/app/bin/x"));
        assert!(path_prefix("/", "/anything"));
    }

    #[test]
    fn case_insensitive_search() {
        assert!(icontains("Hello World", "o wo"));
        assert!(!icontains("Hello", "xyz"));
        assert!(icontains("abc", ""));
    }
}
