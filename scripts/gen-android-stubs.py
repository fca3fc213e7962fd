#!/usr/bin/env python3
"""Generate compile-only stubs of the Android and AndroidX APIs the library
uses, from API signature files (metalava's format 2.0 and 4.0), so that the
JVM build compiles `android/src/android` and the README's samples against
signatures taken from the real API files, not written by hand.

    gen-android-stubs.py OUT_DIR android/api/*.txt

Writes Java stubs (OUT_DIR/java/...: what Kotlin sees of the Java SDK,
with getters as properties, platform types and SAM conversion, as with
android.jar) and Kotlin stubs (OUT_DIR/kotlin/stubs.kt: the members only
Kotlin has, `suspend` functions and top-level `reified` functions of `*Kt`
classes). Nullability: `@Nullable` and a trailing `?` become
`@androidx.annotation.Nullable`; `@NonNull`, and any type without `?` or
`!` in a format 4.0 file, `@androidx.annotation.NonNull`; the rest stay
platform types. A member naming a class that neither the files nor the JDK
define fails the generation, so an excerpt is always complete.
"""
import pathlib
import re
import sys

JDK_PREFIXES = ("java.", "javax.", "kotlin.", "kotlinx.")
PRIMITIVES = {"int", "long", "boolean", "float", "double", "byte", "short", "char", "void"}


class Cls:
    def __init__(self, pkg, header, fmt):
        self.pkg, self.fmt = pkg, fmt
        self.members = []
        m = re.match(r"\s*((?:@\S+\s+)*)public\s+(.*?)\s*\{\s*$", header)
        if not m:
            sys.exit(f"cannot read class line: {header}")
        rest = m.group(2)
        kind = re.search(r"\b(class|interface|enum|@interface)\b", rest)
        self.mods = rest[:kind.start()].split()
        self.kind = kind.group(1)
        after = rest[kind.end():].strip()
        name = re.match(r"([\w.]+)(<.*?>)?(?=\s|$)", after)
        # generic parameters may nest: take a balanced <...>
        self.name = name.group(1)
        after = after[len(self.name):]
        self.generics = ""
        if after.startswith("<"):
            depth = 0
            for i, ch in enumerate(after):
                depth += ch == "<"
                depth -= ch == ">"
                if depth == 0:
                    self.generics, after = after[: i + 1], after[i + 1:]
                    break
        ext = re.search(r"\bextends\s+(.*?)(?=\s+implements\b|$)", after)
        imp = re.search(r"\bimplements\s+(.*)$", after)
        self.extends = split_types(ext.group(1)) if ext else []
        self.implements = split_types(imp.group(1)) if imp else []
        self.fqn = f"{pkg}.{self.name}"


def split_types(text):
    """Split a list of types on spaces or commas outside <...>."""
    out, depth, cur = [], 0, ""
    for ch in text.strip():
        depth += ch == "<"
        depth -= ch == ">"
        if depth == 0 and ch in " ,":
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def parse(paths):
    classes = []
    for path in paths:
        text = pathlib.Path(path).read_text()
        fmt = "4.0" if "Signature format: 4.0" in text else "2.0"
        pkg, cur = None, None
        for line in text.splitlines():
            if line.startswith("package "):
                pkg = line.split()[1]
            elif line.startswith("  ") and not line.startswith("    ") and line.strip().endswith("{"):
                cur = Cls(pkg, line, fmt)
                classes.append(cur)
            elif line.startswith("    ") and cur is not None:
                cur.members.append(line.strip().rstrip(";"))
            elif line.strip() == "}" and line.startswith("  ") and not line.startswith("    "):
                cur = None
    return classes


def strip_annotations(s):
    # annotations with arguments: @RequiresPermission(anyOf={...}), @IntRange(from=0)
    out, i = "", 0
    while i < len(s):
        if s[i] == "@":
            j = i + 1
            while j < len(s) and (s[j].isalnum() or s[j] in "._"):
                j += 1
            if j < len(s) and s[j] == "(":
                depth = 0
                while j < len(s):
                    depth += s[j] == "("
                    depth -= s[j] == ")"
                    j += 1
                    if depth == 0:
                        break
            i = j
            while i < len(s) and s[i] == " ":
                i += 1
        else:
            out += s[i]
            i += 1
    return out


def nullability(raw, fmt):
    if "@Nullable" in raw:
        return "nullable"
    if "@NonNull" in raw:
        return "nonnull"
    t = strip_annotations(raw).strip()
    if t.endswith("?"):
        return "nullable"
    if fmt == "4.0" and not t.endswith("!") and t.split("<")[0] not in PRIMITIVES:
        return "nonnull"
    return "platform"


def java_type(t):
    # `!` (platform) and a trailing `?` (nullable) go; a wildcard `?` stays
    t = re.sub(r"(?<=[\w\]>])[!?]", "", strip_annotations(t))
    t = re.sub(r"\s+extends\s+", " extends ", t)
    t = re.sub(r"<\s*\s", "<", t)
    return t.replace("< ?", "<?").strip()


def referenced(t):
    return re.findall(r"[a-z]\w*(?:\.[a-z]\w*)*\.[A-Z][\w.]*", strip_annotations(t))


def params(text):
    """A member's parameter list as (annotation-and-type, name) pairs."""
    parts = split_top(text)
    out = []
    for i, p in enumerate(parts):
        p = re.sub(r"^optional\s+", "", p.strip())
        bare = strip_annotations(p).strip()
        m = re.match(r"(.*?[\w>\]\.?!])\s+(\w+)$", bare)
        if m and not bare.endswith("..."):
            typ, name = m.group(1), m.group(2)
        else:
            typ, name = bare, f"p{i}"
        out.append((p, typ, name))
    return out


def split_top(text):
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "<("
        depth -= ch in ">)"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def annotate(raw, typ, fmt):
    n = nullability(raw, fmt)
    jt = java_type(typ)
    if jt in PRIMITIVES or n == "platform":
        return jt
    return f"@androidx.annotation.{'Nullable' if n == 'nullable' else 'NonNull'} {jt}"


def main():
    out = pathlib.Path(sys.argv[1])
    classes = parse(sys.argv[2:])
    by_fqn = {c.fqn: c for c in classes}
    known = set(by_fqn)

    def check(t, where):
        for ref in referenced(t):
            if ref.startswith(JDK_PREFIXES) or ref in known:
                continue
            sys.exit(f"{where} names {ref}, which no signature file defines: add its class line")

    java_files, kotlin = {}, []
    for c in classes:
        if c.name.endswith("Kt") and "." not in c.name:
            for m in c.members:
                mm = re.match(r"method public static inline <reified (\w+) extends ([\w.]+)> ([\w.]+)!? (\w+)\((.*)\)$", strip_annotations(m))
                if not mm:
                    sys.exit(f"cannot read {m}")
                tv, bound, ret, name, ps = mm.groups()
                args = ", ".join(f"{n}: {kotlin_type(t)}" for _, t, n in params(ps))
                kotlin.append(f"package {c.pkg}\n\ninline fun <reified {tv} : {bound}> {name}({args}): {ret} =\n    {ret}({tv}::class.java{''.join(', ' + n for _, _, n in params(ps))})\n")
            continue
        if any(" suspend " in f" {m} " for m in c.members):
            kotlin.append(kotlin_class(c))
            continue
        outer = c.name.split(".")[0]
        java_files.setdefault((c.pkg, outer), []).append(c)

    for (pkg, outer), group in java_files.items():
        group.sort(key=lambda c: c.name.count("."))
        body = {}
        for c in group:
            body[c.name] = java_class(c, check)
        # nest inner classes into their outer class, deepest first
        for name in sorted(body, key=lambda n: -n.count(".")):
            if "." in name:
                parent = name.rsplit(".", 1)[0]
                if parent not in body:
                    sys.exit(f"{pkg}.{name}: its outer class {parent} has no class line")
                body[parent] = body[parent][: body[parent].rstrip().rfind("}")] + indent(body[name]) + "}\n"
        path = out / "java" / pkg.replace(".", "/") / f"{outer}.java"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"// Generated by scripts/gen-android-stubs.py from android/api/*.txt: do not edit.\npackage {pkg};\n\n{body[outer]}")
    ann = out / "java/androidx/annotation"
    ann.mkdir(parents=True, exist_ok=True)
    for a in ("Nullable", "NonNull"):
        (ann / f"{a}.java").write_text(f"package androidx.annotation;\n\n@java.lang.annotation.Retention(java.lang.annotation.RetentionPolicy.CLASS)\npublic @interface {a} {{}}\n")
    kt = out / "kotlin"
    kt.mkdir(parents=True, exist_ok=True)
    for i, k in enumerate(kotlin):
        (kt / f"Stubs{i}.kt").write_text("// Generated by scripts/gen-android-stubs.py from android/api/*.txt: do not edit.\n@file:Suppress(\"unused\", \"UNUSED_PARAMETER\")\n\n" + k)
    print(f"{len(classes)} classes: {sum(len(g) for g in java_files.values())} as Java, {len(kotlin)} Kotlin files")


def indent(text):
    return "".join("    " + l if l.strip() else l for l in text.splitlines(True))


def kotlin_type(t):
    t = strip_annotations(t).strip().rstrip("!")
    simple = {"long": "Long", "int": "Int", "boolean": "Boolean", "String": "String"}
    return simple.get(t, t)


def java_class(c, check):
    mods = [m for m in c.mods if m in ("static", "final", "abstract")]
    if c.kind == "interface":
        mods = [m for m in mods if m == "static"]
    if "." not in c.name:
        mods = [m for m in mods if m != "static"]
    simple = c.name.split(".")[-1]
    head = " ".join(["public"] + mods + [c.kind, simple + c.generics])
    ext = [t for t in c.extends if t.split("<")[0] in c_known(c) or t.startswith(JDK_PREFIXES)]
    imp = [t for t in c.implements if t.split("<")[0] in c_known(c) or t.startswith(JDK_PREFIXES)]
    if c.kind == "interface" and ext:
        head += " extends " + ", ".join(java_type(t) for t in ext)
    elif ext:
        head += " extends " + java_type(ext[0])
    if imp:
        head += " implements " + ", ".join(java_type(t) for t in imp)
    lines, consts = [head + " {\n"], []
    stub = '{ throw new RuntimeException("Stub!"); }'
    for m in c.members:
        kind = m.split()[0]
        text = m[len(kind):].strip()
        if kind == "enum_constant":
            consts.append(strip_annotations(text).split()[-1])
        elif kind == "ctor":
            mm = re.match(r"(.*?)public ([\w.]+)\((.*)\)$", text)
            ps = params(mm.group(3))
            for raw, t, _ in ps:
                check(t, f"{c.fqn} ctor")
            args = ", ".join(f"{annotate(raw, t, c.fmt)} {n}" for raw, t, n in ps)
            lines.append(f"    public {simple}({args}) {{ {super_call(c)}{stub[2:]}\n")
        elif kind == "method":
            bare = strip_annotations(text)
            mm = re.match(r"public ((?:(?:static|final|abstract|default)\s+)*)(<.*?>\s+)?(.+?)\s+(\w+)\((.*)\)(?:\s+throws .*)?$", bare)
            if not mm:
                sys.exit(f"cannot read {c.fqn}: {m}")
            mods_, tparams, ret, name, _ = mm.groups()
            raw_params = text[text.index(name + "(") + len(name) + 1: text.rindex(")")]
            ps = params(raw_params)
            check(ret, f"{c.fqn}.{name}")
            for _, t, _ in ps:
                check(t, f"{c.fqn}.{name}")
            ret_raw = text[: text.index(" " + name + "(")]
            rtype = annotate(ret_raw, ret, c.fmt) if ret.strip() != "void" else "void"
            rtype = re.sub(r"^(@androidx\.annotation\.\w+ )?((?:static|final|abstract|default)\s+)*", r"\1", rtype)
            args = ", ".join(f"{annotate(raw, t, c.fmt)} {n}" for raw, t, n in ps)
            is_abstract = "abstract" in mods_ or (c.kind == "interface" and "static" not in mods_ and "default" not in mods_)
            mod_list = [x for x in mods_.split() if x != "default" or c.kind == "interface"]
            if c.kind == "interface":
                mod_list = [x for x in mod_list if x != "abstract"]
            sig = " ".join(["public"] + mod_list + ([tparams.strip()] if tparams else []) + [rtype, f"{name}({args})"])
            lines.append(f"    {sig}{';' if is_abstract else ' ' + stub}\n")
        elif kind == "field":
            bare = strip_annotations(text)
            mm = re.match(r"public ((?:static|final)\s+)*(.+?)\s+(\w+)(?:\s*=\s*(.+?))?(?:;?\s*//.*)?$", bare)
            typ, name, value = mm.group(2), mm.group(3), mm.group(4)
            check(typ, f"{c.fqn}.{name}")
            jt = java_type(typ)
            if value is None:
                value = {"int": 'Integer.parseInt("0")', "long": 'Long.parseLong("0")', "boolean": 'Boolean.parseBoolean("false")'}.get(jt, "null")
            lines.append(f"    public static final {jt} {name} = {value};\n")
        # property lines: the getter is listed as a method; Kotlin sees it as the property
    if c.kind == "enum":
        lines.insert(1, "    " + ", ".join(consts) + ";\n")
    lines.append("}\n")
    return "".join(lines)


_known = set()
_classes = {}


def super_call(c):
    """`super(...)` with placeholder arguments, when the superclass has no
    constructor without arguments."""
    if not c.extends or c.kind != "class":
        return ""
    sup = _classes.get(c.extends[0].split("<")[0])
    if sup is None:
        return ""
    ctors = [m for m in sup.members if m.startswith("ctor ")]
    if not ctors or any(m.endswith("()") for m in ctors):
        return ""
    ps = params(ctors[0][ctors[0].index("(") + 1: ctors[0].rindex(")")])
    zero = {"int": "0", "long": "0L", "boolean": "false", "float": "0f", "double": "0.0"}
    args = ", ".join(zero.get(java_type(t), f"({java_type(t)}) null") for _, t, _ in ps)
    return f"super({args}); "


def c_known(c):
    return _known


def kotlin_class(c):
    """A class with suspend members (written in Kotlin upstream)."""
    simple = c.name.split(".")[-1]
    sup = c.extends[0] if c.extends else None
    lines = [f"package {c.pkg}\n\n"]
    ctor = next((m for m in c.members if m.startswith("ctor ")), None)
    ps = params(ctor[ctor.index("(") + 1: ctor.rindex(")")]) if ctor else []
    args = ", ".join(f"{n}: {kotlin_type(t)}" for _, t, n in ps)
    sup_call = f" : {sup}({', '.join(n for _, _, n in ps)})" if sup else ""
    lines.append(f"{'abstract ' if 'abstract' in c.mods else 'open '}class {simple}({args}){sup_call} {{\n")
    for m in c.members:
        mm = re.match(r"method public (abstract |final )?suspend Object\? (\w+)\((.*)kotlin\.coroutines\.Continuation<\? super ([\w.]+)>\)$", strip_annotations(m))
        if mm:
            abstract, name, pre, ret = mm.groups()
            if abstract and abstract.strip() == "abstract":
                lines.append(f"    abstract suspend fun {name}(): {ret}\n")
            else:
                lines.append(f"    open suspend fun {name}(): {ret} = throw UnsupportedOperationException(\"Stub!\")\n")
    lines.append("}\n")
    return "".join(lines)


if __name__ == "__main__":
    # every class the files define, for supertypes
    for parsed in parse(sys.argv[2:]):
        _known.add(parsed.fqn)
        _classes[parsed.fqn] = parsed
    main()
