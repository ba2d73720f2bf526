"""The built-in ToolUse-v0 templates that each work on one part of the world: the key-value store, the file
system, the database, the calendar and the clock (`tooluse_templates_chains.py` chains them). Each registers
itself with `@template` (`tooluse_builder.py`); the order they are defined in is the order of `TEMPLATES`.
"""

from __future__ import annotations

import datetime as dt

from sparring.envs.tooluse_builder import (
    CITIES,
    DEPTS,
    FOLDERS,
    WORDS,
    Builder,
    Call,
    Draft,
    Redraw,
    minutes_of,
    template,
)
from sparring.envs.tooluse_checks import DAY_END, DAY_START, clock, free_slots


def sum_expression(values: list[int]) -> str:
    return " + ".join(map(str, values))


# ---- key-value store -----------------------------------------------------------------------------------

@template()
def kv_lookup(b: Builder) -> Draft:
    """Answer the value stored under a key."""
    key = b.key("user")
    b.kv[key] = value = b.rng.choice(CITIES)
    twin = b.key("user")  # a similar key with another value
    b.kv[twin] = other = b.rng.choice([c for c in CITIES if c != value])
    return Draft(f"What value is stored under the key '{key}' in the key-value store? Answer with the value only.",
                 f"get {key}", [("kv_get", {"key": key})], value, wrong_answers=[other])


@template()
def kv_to_file(b: Builder) -> Draft:
    """Copy a key's value into a new file."""
    key, path = b.key(), b.path("out")
    b.kv[key] = value = b.word()
    return Draft(f"Write the value stored under the key '{key}' to the file {path}: the file must hold exactly that "
                 "value and nothing else.", f"{key} > {path}",
                 [("kv_get", {"key": key}), ("fs_write", {"path": path, "content": value})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": key})]])


@template()
def file_to_kv(b: Builder) -> Draft:
    """Store a one-line file's text under a key."""
    path, key = b.path("inbox"), b.key("note")
    b.files[path] = text = b.word()
    return Draft(f"Store the text of the file {path} under the key '{key}' in the key-value store.",
                 f"{path} > {key}", [("fs_read", {"path": path}), ("kv_set", {"key": key, "value": text})],
                 wrong_episodes=[[("kv_set", {"key": key, "value": path})]])


@template()
def kv_sum(b: Builder) -> Draft:
    """Add up the numbers stored under several keys."""
    keys = [b.key("count") for _ in range(b.level + 1)]
    values = [b.number() for _ in keys]
    b.kv.update(zip(keys, map(str, values)))
    calls: list[Call] = [("kv_get", {"key": k}) for k in keys]
    if b.level > 1:
        calls.append(("calculate", {"expression": sum_expression(values)}))
    total = sum(values)
    return Draft(f"What is the sum of the numbers stored under the keys {', '.join(repr(k) for k in keys)}? "
                 "Answer with the number only.", f"sum {' '.join(keys)}", calls, str(total),
                 wrong_answers=[str(total - values[-1]), str(total + 1)])


@template()
def kv_copy_key(b: Builder) -> Draft:
    """Copy a value from one key to a new key."""
    source, target = b.key(), b.key("backup")
    b.kv[source] = value = b.word()
    return Draft(f"Copy the value of the key '{source}' to a new key '{target}' (keep '{source}' as it is).",
                 f"{source} >> {target}", [("kv_get", {"key": source}), ("kv_set", {"key": target, "value": value})],
                 wrong_episodes=[[("kv_get", {"key": source}), ("kv_set", {"key": target, "value": value}),
                                  ("kv_delete", {"key": source})]])


@template()
def kv_rename(b: Builder) -> Draft:
    """Rename a key: store its value under a new key and delete the old one."""
    source, target = b.key("tmp"), b.key()
    b.kv[source] = value = b.rng.choice(CITIES)
    return Draft(f"Rename the key '{source}' to '{target}': '{target}' must hold its value and '{source}' must no "
                 "longer exist.", f"rename {source} {target}",
                 [("kv_get", {"key": source}), ("kv_set", {"key": target, "value": value}), ("kv_delete", {"key": source})])


@template()
def kv_prefix_count(b: Builder) -> Draft:
    """Count the keys that start with a prefix."""
    prefix = f"{b.fresh(lambda: b.rng.choice(('tag', 'flag', 'seen', 'todo')))}:"
    n = b.rng.randint(1, 2 + 2 * b.level)
    for _ in range(n):
        b.kv[b.key(prefix[:-1])] = b.word()
    b.kv[b.fresh(lambda: prefix[:-1] + b.word())] = b.word()  # shares the prefix's letters, not the prefix
    return Draft(f"How many keys of the key-value store start with '{prefix}'? Answer with the number only.",
                 f"count {prefix}", [("kv_list", {"prefix": prefix})], str(n), wrong_answers=[str(n + 1)])


@template()
def kv_max(b: Builder) -> Draft:
    """Find the key with the highest number under a prefix."""
    keys = [b.key("score") for _ in range(b.level + 2)]
    values = b.rng.sample(range(10, 99), len(keys))
    b.kv.update(zip(keys, map(str, values)))
    best = keys[values.index(max(values))]
    return Draft("Among the keys that start with 'score:', which one holds the highest number? Answer with the key.",
                 "max score:", [("kv_list", {"prefix": "score:"})], best,
                 wrong_answers=[keys[values.index(min(values))], str(max(values))])


# ---- file system ---------------------------------------------------------------------------------------

@template()
def file_copy(b: Builder) -> Draft:
    """Copy a file to a new path."""
    source, target = b.path("docs"), b.path("backup")
    b.files[source] = text = b.sentence(4 + b.level)
    return Draft(f"Copy the file {source} to {target} (keep the original).", f"cp {source} {target}",
                 [("fs_read", {"path": source}), ("fs_write", {"path": target, "content": text})],
                 wrong_episodes=[[("fs_move", {"source": source, "destination": target})]])


@template()
def file_move(b: Builder) -> Draft:
    """Move a file into another folder."""
    source, folder = b.path("inbox"), b.folder()
    b.files[source] = b.sentence()
    b.files[f"{folder}/readme.txt"] = "archived files"
    target = f"{folder}/{source.rsplit('/', 1)[1]}"
    return Draft(f"Move the file {source} into the folder {folder}, keeping its name.", f"mv {source} {folder}",
                 [("fs_move", {"source": source, "destination": folder})],
                 wrong_episodes=[[("fs_read", {"path": source}), ("fs_write", {"path": target, "content": "?"})]])


@template()
def file_line_count(b: Builder) -> Draft:
    """Count the lines of a file."""
    path = b.path("reports")
    n = b.rng.randint(2, 3 + 3 * b.level)
    b.files[path] = "\n".join(b.sentence(b.rng.randint(2, 4)) for _ in range(n))
    return Draft(f"How many lines does the file {path} have? Answer with the number only.", f"lines {path}",
                 [("fs_read", {"path": path})], str(n), wrong_answers=[str(n - 1), str(n + 1)])


@template()
def file_find(b: Builder) -> Draft:
    """Find the file that mentions a word."""
    word = b.fresh(lambda: f"{b.rng.choice(WORDS)}{b.rng.randint(10, 99)}")
    paths = [b.path("docs") for _ in range(b.level + 1)]
    for path in paths:
        b.files[path] = b.sentence()
    b.files[paths[0]] += f" {word}"
    return Draft(f"Which file under /docs contains the word '{word}'? Answer with its full path.", f"find {word}",
                 [("fs_search", {"text": word, "path": "/docs"})], paths[0], wrong_answers=paths[1:2] or ["/docs"])


@template()
def folder_count(b: Builder) -> Draft:
    """Count the files in a folder."""
    folder = b.folder()
    n = b.rng.randint(1, 2 + 2 * b.level)
    for _ in range(n):
        b.files[b.path(folder.lstrip("/"))] = b.word()
    b.files[f"{folder}/sub/{b.word()}.txt"] = b.word()  # a subfolder's file does not count
    return Draft(f"How many files are directly in the folder {folder} (not counting subfolders)? Answer with the "
                 "number only.", f"count {folder}", [("fs_list", {"path": folder})], str(n),
                 wrong_answers=[str(n + 1)])


@template()
def file_delete_matching(b: Builder) -> Draft:
    """Delete the files of a folder that mention a word."""
    word = b.fresh(lambda: f"{b.rng.choice(('obsolete', 'stale', 'draft', 'spam'))}{b.rng.randint(1, 9)}")
    folder = "/" + b.rng.choice(FOLDERS)
    marked = [b.path(folder[1:]) for _ in range(b.level)]
    kept = [b.path(folder[1:]) for _ in range(b.level)]
    for path in marked:
        b.files[path] = f"{b.sentence(3)} {word}"
    for path in kept:
        b.files[path] = b.sentence(3)
    calls: list[Call] = [("fs_search", {"text": word, "path": folder})] + [("fs_delete", {"path": p}) for p in sorted(marked)]
    return Draft(f"Delete every file in {folder} that contains the word '{word}', and no other file.",
                 f"rm {folder} {word}", calls, wrong_episodes=[[("fs_delete", {"path": p}) for p in kept]])


@template()
def file_line_n(b: Builder) -> Draft:
    """Answer one line of a file."""
    path = b.path("notes")
    lines = [b.sentence(2) + f" {i}" for i in range(b.rng.randint(2, 2 + 2 * b.level))]
    b.files[path] = "\n".join(lines)
    k = b.rng.randrange(len(lines))
    return Draft(f"What is line {k + 1} of the file {path} (the first line is line 1)? Answer with the line's text.",
                 f"line {k + 1} {path}", [("fs_read", {"path": path})], lines[k],
                 wrong_answers=[lines[k - 1] if k else lines[-1]])


@template()
def file_append_line(b: Builder) -> Draft:
    """Add a line at the end of a file."""
    path = b.path("notes")
    b.files[path] = text = "\n".join(b.sentence(3) for _ in range(b.level))
    line = f"{b.word()} {b.number()}"
    return Draft(f"Add the line '{line}' at the end of the file {path}, keeping the lines it already has.",
                 f"append {path} {line}", [("fs_read", {"path": path}), ("fs_write", {"path": path, "content": f"{text}\n{line}"})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": line})]])


# ---- database ------------------------------------------------------------------------------------------

@template()
def db_count(b: Builder) -> Draft:
    """Count the employees of a department."""
    dept = b.rng.choice(DEPTS[:2 + b.level])
    b.add_employee(dept=dept)
    n = sum(r[2] == dept for r in b.employees)
    return Draft(f"How many employees work in the '{dept}' department (table employees)? Answer with the number only.",
                 f"count dept {dept}", [("sql_query", {"sql": f"SELECT COUNT(*) FROM employees WHERE dept = '{dept}'"})],
                 str(n), wrong_answers=[str(n + 1), str(len(b.employees))])


@template()
def db_top_salary(b: Builder) -> Draft:
    """Name the best-paid employee of a department."""
    dept = b.rng.choice(DEPTS[:2 + b.level])
    top = max((r[3] for r in b.employees if r[2] == dept), default=3000) + b.rng.randrange(50, 500, 50)
    name = b.add_employee(dept=dept, salary=top)[1]
    runner = max((r for r in b.employees if r[2] == dept and r[1] != name), key=lambda r: r[3], default=None)
    return Draft(f"Who has the highest salary in the '{dept}' department (table employees)? Answer with the name only.",
                 f"top {dept}", [("sql_query", {"sql": f"SELECT name FROM employees WHERE dept = '{dept}' "
                                                       "ORDER BY salary DESC LIMIT 1"})],
                 name, wrong_answers=[runner[1] if runner else "nobody"])


@template()
def db_order_total(b: Builder) -> Draft:
    """Add up the quantity ordered of a product."""
    sku, name = b.rng.choice(b.products)[:2]
    for _ in range(b.level):
        b.add_order(sku=sku)
    total = sum(r[3] for r in b.orders if r[2] == sku)
    return Draft(f"How many units of the product '{name}' were ordered in total? The table orders has a sku column; "
                 "the table products maps each sku to a name. Answer with the number only.", f"ordered {name}",
                 [("sql_query", {"sql": "SELECT SUM(o.qty) FROM orders o JOIN products p ON o.sku = p.sku "
                                        f"WHERE p.name = '{name}'"})], str(total), wrong_answers=[str(total + 1)])


@template()
def db_insert_from_file(b: Builder) -> Draft:
    """Insert the employee described in a file."""
    path = b.path("inbox", "csv")
    name, dept, salary, city = b.person(), b.rng.choice(DEPTS), b.rng.randrange(3000, 9000, 50), b.rng.choice(CITIES)
    b.files[path] = f"name,dept,salary,city\n{name},{dept},{salary},{city}"
    sql = f"INSERT INTO employees (name, dept, salary, city) VALUES ('{name}', '{dept}', {salary}, '{city}')"
    return Draft(f"The file {path} describes a new employee. Add them to the table employees (the id is assigned "
                 "automatically).", f"hire {path}", [("fs_read", {"path": path}), ("sql_execute", {"sql": sql})],
                 wrong_episodes=[[("sql_execute", {"sql": sql.replace(str(salary), str(salary + 100))})]])


@template()
def db_update_from_kv(b: Builder) -> Draft:
    """Set a product's stock to a number kept in the key-value store."""
    sku, _, _, stock = b.rng.choice(b.products)
    key = b.key("stock")
    b.kv[key] = str(new := stock + b.rng.randint(1, 30))
    sql = f"UPDATE products SET stock = {new} WHERE sku = '{sku}'"
    return Draft(f"Set the stock of the product with sku '{sku}' (table products) to the number stored under the key "
                 f"'{key}'.", f"stock {sku} = {key}", [("kv_get", {"key": key}), ("sql_execute", {"sql": sql})],
                 wrong_episodes=[[("sql_execute", {"sql": f"UPDATE products SET stock = {new}"})]])


@template()
def db_delete_customer(b: Builder) -> Draft:
    """Delete every order of a customer."""
    customer = b.rng.choice(b.employees)[1]
    for _ in range(b.level):
        b.add_order(customer=customer)
    return Draft(f"Delete every order placed by {customer} from the table orders, and nothing else.",
                 f"drop orders {customer}", [("sql_execute", {"sql": f"DELETE FROM orders WHERE customer = '{customer}'"})],
                 wrong_episodes=[[("sql_execute", {"sql": f"DELETE FROM orders WHERE customer != '{customer}'"})]])


@template()
def db_export_names(b: Builder) -> Draft:
    """Export a department's names to a file."""
    dept, path = b.rng.choice(DEPTS[:2 + b.level]), b.path("reports")
    b.add_employee(dept=dept)
    names = sorted(r[1] for r in b.employees if r[2] == dept)
    return Draft(f"Write the names of the employees of the '{dept}' department to the file {path}, one per line, in "
                 "alphabetical order, and nothing else.", f"names {dept} > {path}",
                 [("sql_query", {"sql": f"SELECT name FROM employees WHERE dept = '{dept}' ORDER BY name"}),
                  ("fs_write", {"path": path, "content": "\n".join(names)})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": "\n".join(reversed(names)) + "\nx"})]])


@template()
def db_count_to_kv(b: Builder) -> Draft:
    """Store a customer's number of orders under a key."""
    customer, key = b.rng.choice(b.employees)[1], b.key("orders")
    b.add_order(customer=customer)
    n = sum(r[1] == customer for r in b.orders)
    return Draft(f"Count the orders placed by {customer} (table orders) and store the number under the key '{key}'.",
                 f"count orders {customer} > {key}",
                 [("sql_query", {"sql": f"SELECT COUNT(*) FROM orders WHERE customer = '{customer}'"}),
                  ("kv_set", {"key": key, "value": str(n)})], wrong_episodes=[[("kv_set", {"key": key, "value": str(n + 1)})]])


@template(held_out=True)
def db_raise_salary(b: Builder) -> Draft:
    """Raise an employee's salary by an amount written in a file."""
    _, name, _, salary, _ = b.rng.choice(b.employees)
    path, raise_by = b.path("inbox"), b.rng.randrange(100, 1000, 50)
    b.files[path] = str(raise_by)
    sql = f"UPDATE employees SET salary = {salary + raise_by} WHERE name = '{name}'"
    return Draft(f"The file {path} holds an amount. Raise the salary of {name} (table employees) by that amount.",
                 f"raise {name} by {path}", [("fs_read", {"path": path}), ("sql_execute", {"sql": sql})],
                 wrong_episodes=[[("sql_execute", {"sql": f"UPDATE employees SET salary = {raise_by} WHERE name = '{name}'"})]])


# ---- calendar ------------------------------------------------------------------------------------------

@template()
def cal_count(b: Builder) -> Draft:
    """Count the events of a day."""
    day = b.day(1, 5)
    n = b.rng.randint(1, 1 + 2 * b.level)
    for _ in range(n):
        b.add_event(b.title(), day, *b.slot())
    n = sum(e["date"] == day for e in b.events)
    return Draft(f"How many events does the calendar have on {day}? Answer with the number only.", f"events {day}",
                 [("cal_list", {"date": day})], str(n), wrong_answers=[str(n + 1)])


@template()
def cal_add_event(b: Builder) -> Draft:
    """Add an event."""
    title, day = b.title(), b.day(1, 9)
    start, end = b.slot()
    return Draft(f"Add the event '{title}' to the calendar on {day} from {start} to {end}.",
                 f"add {title} {day} {start}-{end}", [("cal_add", {"title": title, "date": day, "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": b.day(10, 12), "start": start, "end": end})]])


@template()
def cal_add_tomorrow(b: Builder) -> Draft:
    """Add an event tomorrow (the date comes from the clock)."""
    title, (start, end) = b.title(), b.slot(60)
    tomorrow = (b.today + dt.timedelta(days=1)).isoformat()
    return Draft(f"Add a one-hour event '{title}' to the calendar tomorrow, starting at {start}.",
                 f"add {title} tomorrow {start}",
                 [("now", {}), ("date_add", {"date": b.today.isoformat(), "days": 1}),
                  ("cal_add", {"title": title, "date": tomorrow, "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": b.today.isoformat(), "start": start, "end": end})]])


@template()
def cal_first_free(b: Builder) -> Draft:
    """Book the first free slot of a day."""
    day, title = b.day(1, 4), b.title()
    minutes = b.rng.choice((30, 60, 90))
    cursor = minutes_of(DAY_START)
    for _ in range(b.level):  # a morning packed from the start of the day
        length = b.rng.choice((30, 45, 60))
        b.add_event(b.title(), day, clock(cursor), clock(cursor + length))
        cursor += length + b.rng.choice((0, 15))
    slots = free_slots(b.events, day, minutes)
    if not slots:
        raise Redraw(f"no free {minutes}-minute period on {day}")
    start = slots[0][0]
    return Draft(f"On {day}, book '{title}' for {minutes} minutes in the first free period of the working day "
                 f"({DAY_START}-{DAY_END}) that is long enough.", f"book {title} {day} {minutes}m",
                 [("cal_free_slots", {"date": day, "minutes": minutes}),
                  ("cal_add", {"title": title, "date": day, "start": clock(start), "end": clock(start + minutes)})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": day, "start": DAY_START,
                                               "end": clock(minutes_of(DAY_START) + minutes)})]])


@template()
def cal_cancel(b: Builder) -> Draft:
    """Cancel an event by its title."""
    day, title = b.day(0, 4), b.title()
    for _ in range(b.level):
        b.add_event(b.title(), day, *b.slot())
    b.add_event(title, day, *b.slot())
    event_id = len(b.events)
    other = next(e["id"] for e in b.events if e["date"] == day and e["id"] != event_id)
    return Draft(f"Cancel the event '{title}' on {day} (delete it from the calendar).", f"cancel {title} {day}",
                 [("cal_list", {"date": day}), ("cal_delete", {"event_id": event_id})],
                 wrong_episodes=[[("cal_delete", {"event_id": other})]])


@template()
def cal_from_file(b: Builder) -> Draft:
    """Add the event described in a file."""
    path, title, day = b.path("inbox"), b.title(), b.day(1, 9)
    start, end = b.slot()
    b.files[path] = f"title: {title}\ndate: {day}\nstart: {start}\nend: {end}"
    return Draft(f"The file {path} describes a meeting. Add it to the calendar.", f"invite {path}",
                 [("fs_read", {"path": path}), ("cal_add", {"title": title, "date": day, "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": day, "start": start, "end": "23:59"})]])


@template()
def cal_agenda_to_file(b: Builder) -> Draft:
    """Write a day's agenda to a file."""
    day, path = b.day(1, 4), b.path("reports")
    for _ in range(b.level + 1):
        b.add_event(b.title(), day, *b.slot())
    events = sorted((e for e in b.events if e["date"] == day), key=lambda e: (e["start"], e["end"], e["id"]))
    titles = [e["title"] for e in events]
    return Draft(f"Write the titles of the events on {day} to the file {path}, one per line, in time order, and "
                 "nothing else.", f"agenda {day} > {path}",
                 [("cal_list", {"date": day}), ("fs_write", {"path": path, "content": "\n".join(titles)})],
                 wrong_episodes=[[("fs_write", {"path": path, "content": "\n".join(titles[1:] + titles[:1] + ["x"])})]])


@template(held_out=True)
def cal_reschedule(b: Builder) -> Draft:
    """Move an event to another day at the same times."""
    title, day, new_day = b.title(), b.day(0, 3), b.day(4, 8)
    start, end = b.slot()
    b.add_event(title, day, start, end)
    event_id = len(b.events)
    return Draft(f"Move the event '{title}' from {day} to {new_day}, at the same times.",
                 f"move {title} {day} > {new_day}",
                 [("cal_list", {"date": day}), ("cal_delete", {"event_id": event_id}),
                  ("cal_add", {"title": title, "date": new_day, "start": start, "end": end})],
                 wrong_episodes=[[("cal_add", {"title": title, "date": new_day, "start": start, "end": end})]])


# ---- clock ---------------------------------------------------------------------------------------------

@template()
def today_to_kv(b: Builder) -> Draft:
    """Store today's date under a key."""
    key = b.key("last")
    return Draft(f"Store today's date (YYYY-MM-DD) under the key '{key}'.", f"today > {key}",
                 [("now", {}), ("kv_set", {"key": key, "value": b.today.isoformat()})],
                 wrong_episodes=[[("kv_set", {"key": key, "value": (b.today - dt.timedelta(days=1)).isoformat()})]])


@template(held_out=True)
def days_until(b: Builder) -> Draft:
    """Count the days from today to a date stored under a key."""
    key, days = b.key("deadline"), b.rng.randint(2, 20 * b.level)
    b.kv[key] = (b.today + dt.timedelta(days=days)).isoformat()
    return Draft(f"How many days are there from today until the date stored under the key '{key}'? Answer with "
                 "the number only.", f"days to {key}",
                 [("now", {}), ("kv_get", {"key": key}),
                  ("date_diff", {"start": b.today.isoformat(), "end": b.kv[key]})], str(days),
                 wrong_answers=[str(days + 1)])
