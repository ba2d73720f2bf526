"""The built-in ToolUse-v0 templates that chain tools across parts of the world (files, keys, the database,
the calendar). They import `tooluse_templates_basic`, so its templates are always registered first: the
order of `TEMPLATES` (which decides which template a seed draws) does not depend on the order of imports.
"""

from __future__ import annotations

import datetime as dt

from sparring.envs.tooluse_builder import DEPTS, ITEMS, WORDS, Builder, Draft, template
from sparring.envs.tooluse_templates_basic import sum_expression


@template()
def kv_sum_to_file(b: Builder) -> Draft:
    """Write the sum of several keys' numbers to a file."""
    keys, path = [b.key("count") for _ in range(b.level + 1)], b.path("out")
    values = [b.number() for _ in keys]
    b.kv.update(zip(keys, map(str, values)))
    total = sum(values)
    return Draft(f"Add up the numbers stored under the keys {', '.join(repr(k) for k in keys)} and write the total "
                 f"to the file {path} (just the number).", f"sum {' '.join(keys)} > {path}",
                 [("kv_get", {"key": k}) for k in keys] + [("calculate", {"expression": sum_expression(values)}),
                                                           ("fs_write", {"path": path, "content": str(total)})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": str(total - 1)})]])


@template()
def file_numbers_to_kv(b: Builder) -> Draft:
    """Store the total of a file's numbers under a key."""
    path, key = b.path("data"), b.key("total")
    values = [b.number(1, 50) for _ in range(b.level + 2)]
    b.files[path] = "\n".join(map(str, values))
    return Draft(f"The file {path} holds one number per line. Store their total under the key '{key}'.",
                 f"sum {path} > {key}",
                 [("fs_read", {"path": path}), ("calculate", {"expression": sum_expression(values)}),
                  ("kv_set", {"key": key, "value": str(sum(values))})],
                 wrong_episodes=[[("kv_set", {"key": key, "value": str(values[0])})]])


@template()
def kv_to_db_product(b: Builder) -> Draft:
    """Insert a product whose fields are kept in the key-value store."""
    sku = b.fresh(lambda: f"N{b.rng.randint(100, 999)}")
    name, price = b.fresh(lambda: b.rng.choice(ITEMS) + "-" + b.word()), b.rng.randint(2, 90)
    keys = {f"new:{field}": value for field, value in (("sku", sku), ("name", name), ("price", str(price)))}
    b.kv.update(keys)
    sql = f"INSERT INTO products (sku, name, price, stock) VALUES ('{sku}', '{name}', {price}, 0)"
    return Draft("The keys 'new:sku', 'new:name' and 'new:price' describe a new product. Add it to the table products "
                 "with a stock of 0.", "add product new:*",
                 [("kv_list", {"prefix": "new:"}), ("sql_execute", {"sql": sql})],
                 wrong_episodes=[[("sql_execute", {"sql": sql.replace(f", {price}, 0)", f", {price}, 1)")})]])


@template()
def db_to_file_total(b: Builder) -> Draft:
    """Write the value of a product's stock (price times stock) to a file."""
    sku, name, price, stock = b.rng.choice(b.products)
    path = b.path("reports")
    return Draft(f"Compute the value of the stock of the product '{name}' (price times stock, table products) and "
                 f"write it to the file {path} (just the number).", f"value {name} > {path}",
                 [("sql_query", {"sql": f"SELECT price, stock FROM products WHERE name = '{name}'"}),
                  ("calculate", {"expression": f"{price} * {stock}"}),
                  ("fs_write", {"path": path, "content": str(price * stock)})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": str(price + stock)})]])


@template()
def cal_to_kv_count(b: Builder) -> Draft:
    """Store the number of a day's events under a key."""
    day, key = b.day(1, 4), b.key("busy")
    for _ in range(b.rng.randint(1, 1 + b.level)):
        b.add_event(b.title(), day, *b.slot())
    n = sum(e["date"] == day for e in b.events)
    return Draft(f"Count the calendar's events on {day} and store the number under the key '{key}'.",
                 f"events {day} > {key}", [("cal_list", {"date": day}), ("kv_set", {"key": key, "value": str(n)})],
                 wrong_episodes=[[("kv_set", {"key": key, "value": str(n + 1)})]])


@template()
def file_to_calendar_today(b: Builder) -> Draft:
    """Add an event for today whose title and times are in a file."""
    path, title, (start, end) = b.path("inbox"), b.title(), b.slot()
    b.files[path] = f"{title}\n{start}-{end}"
    return Draft(f"The file {path} holds an event's title (first line) and times (second line). Add it to the "
                 "calendar for today.", f"today {path}",
                 [("fs_read", {"path": path}), ("now", {}),
                  ("cal_add", {"title": title, "date": b.today.isoformat(), "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": (b.today + dt.timedelta(days=1)).isoformat(),
                                               "start": start, "end": end})]])


@template(held_out=True)
def db_top_to_calendar(b: Builder) -> Draft:
    """Book a meeting with the best-paid employee of a department."""
    dept = b.rng.choice(DEPTS[:2 + b.level])
    top = max((r[3] for r in b.employees if r[2] == dept), default=3000) + 100
    name = b.add_employee(dept=dept, salary=top)[1]
    day, (start, end) = b.day(1, 5), b.slot(30)
    return Draft(f"Book a meeting titled '1:1 <name>' with the best-paid employee of the '{dept}' department "
                 f"(table employees) on {day} from {start} to {end}; <name> is their name.",
                 f"1:1 top {dept} {day} {start}-{end}",
                 [("sql_query", {"sql": f"SELECT name FROM employees WHERE dept = '{dept}' ORDER BY salary DESC LIMIT 1"}),
                  ("cal_add", {"title": f"1:1 {name}", "date": day, "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": "1:1 <name>", "date": day, "start": start, "end": end})]])


@template(held_out=True)
def kv_backup_to_file(b: Builder) -> Draft:
    """Write every key with a prefix, and its value, to a file."""
    prefix, path = b.fresh(lambda: b.rng.choice(("env", "opt", "pref"))) + ":", b.path("backup")
    for _ in range(b.level + 1):
        b.kv[b.key(prefix[:-1])] = b.word()
    lines = [f"{k}={v}" for k, v in sorted(b.kv.items()) if k.startswith(prefix)]
    return Draft(f"Back up every key that starts with '{prefix}' to the file {path}: one key=value line per key, in "
                 "key order, and nothing else.", f"backup {prefix} > {path}",
                 [("kv_list", {"prefix": prefix}), ("fs_write", {"path": path, "content": "\n".join(lines)})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": "\n".join(k.split("=")[0] for k in lines)})]])


@template(held_out=True)
def file_replace_word(b: Builder) -> Draft:
    """Replace a word everywhere in a file."""
    path, old = b.path("drafts"), b.fresh(lambda: b.rng.choice(WORDS))
    new = b.fresh(lambda: b.rng.choice([w for w in WORDS if w not in b._used]))
    lines = [f"{b.sentence(2)} {old} {b.sentence(1)}" for _ in range(b.level)]
    b.files[path] = text = "\n".join(lines)
    replaced = "\n".join(" ".join(new if w == old else w for w in line.split(" ")) for line in lines)
    return Draft(f"In the file {path}, replace every whole word '{old}' with '{new}'.", f"replace {old} {new} {path}",
                 [("fs_read", {"path": path}), ("fs_write", {"path": path, "content": replaced})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": text.replace(old, new, 1) + " " + new})]])
