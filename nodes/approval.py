"""Approval: people decide each item; the run waits durably (no memory, no task) until they have, then goes on
through the port of their outcome."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from flowboard.sdk import (
    Category,
    ChatConfig,
    Context,
    EmailConfig,
    Inputs,
    Item,
    Items,
    NodeError,
    NodeType,
    Outputs,
    Service,
    Suspend,
    get_path,
    post_messages,
    send_messages,
)

_PORT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
TIMED_OUT = "timed_out"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FormField(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Key of the answer in the decision's "
                      "fields, e.g. days.")
    label: str = Field(min_length=1, description="What the approver reads, e.g. Days granted.")
    type: Literal["text", "textarea", "number", "yes_no"] = Field(
        "text", description="Kind of answer.", json_schema_extra={"widget": "select", "enum_labels": [
            "A short text", "A longer text", "A number", "Yes or no"]})
    required: bool = Field(False, description="The approver must fill it in.")
    default: str | int | float | bool | None = Field(None, description="Filled in beforehand, e.g. "
                                                     "{{ item.days }} for a correctable amount.")


class ChatNotice(_Strict):
    via: Literal["chat"] = Field(description="Post each approver's request to a chat channel.")
    service: Service = Field(description="slack, teams, discord or mattermost.", json_schema_extra={"widget": "select"})
    credential: str = Field(min_length=1, description="Credential holding the incoming webhook URL.",
                            json_schema_extra={"widget": "credential", "credential_types": ["chat_webhook"]})


class EmailNotice(_Strict):
    via: Literal["email"] = Field(description="Email each approver their request.")
    credential: str = Field(min_length=1, description="Credential of the mail server (type smtp).",
                            json_schema_extra={"widget": "credential", "credential_types": ["smtp"]})
    sender: str = Field(min_length=1, description="From, e.g. Flowboard <flows@example.com>.")
    addresses: dict[str, str] = Field(default_factory=dict, description="Only for approvers without an email on the "
                                      "Users page: their address, e.g. ada: ada@example.com.",
                                      json_schema_extra={"widget": "key_value"})


Notice = Annotated[ChatNotice | EmailNotice, Field(discriminator="via")]
_NOTICE: TypeAdapter[ChatNotice | EmailNotice] = TypeAdapter(Notice)


class ApprovalConfig(_Strict):
    approvers: list[str] | str = Field(
        description="Who decides: user names (ada or user:ada), roles (role:manager: anyone with the role), "
                    "or an expression such as {{ item.manager }}; several separated by commas.")
    rule: Literal["any", "n_of_m", "all", "sequence"] = Field(
        "any", description="How their answers decide: the first answer of any one of them; a number of approvals "
        "(set below); everyone's approval; or each approver in turn, in the order listed (the next is asked when "
        "the one before approves).",
        json_schema_extra={"widget": "select", "enum_labels": [
            "Any one of them decides", "A number of them must agree", "All of them must agree",
            "One after another, in order"]})
    needed: int = Field(2, ge=1, le=50, description="When a number of them must agree: how many approvals are "
                        "needed.")
    title: str = Field("Approval needed", min_length=1, description="What the task is called in the inbox, e.g. "
                       "Vacation: {{ item.employee }}, {{ item.days }} days.")
    message: str = Field("", description="What the approver reads; expressions allowed.",
                         json_schema_extra={"widget": "textarea"})
    show: list[str] = Field(default_factory=list, description="Fields of the item shown to the approver (empty: "
                            "all), e.g. employee, days, balance.left.")
    form: list[FormField] = Field(default_factory=list, description="Questions the approver answers (a comment is "
                                  "always offered).")
    outcomes: list[str] = Field(default_factory=lambda: ["approve", "reject"], min_length=1, max_length=10,
                                description="The answers: each is a button and an output port (lowercase words, "
                                            "e.g. approve, reject, ask_hr).")
    requester: str = Field("", description="Who asked, e.g. {{ item.employee }}: they can never decide their own "
                           "request.")
    deadline_hours: float | None = Field(None, gt=0, le=24 * 365, description="Hours the approvers have; empty: no "
                                         "deadline. After it: escalate (if set), else the Timed out output.")
    escalate_to: list[str] | str = Field(default_factory=list, description="At the deadline, hand the open tasks to "
                                         "these people or roles once (e.g. role:director) instead of timing out.")
    escalate_hours: float = Field(24, gt=0, le=24 * 365, description="Hours the escalation people have.")
    remind_before_hours: float | None = Field(None, gt=0, le=24 * 365, description="Remind the approvers who have "
                                              "not answered this many hours before the deadline (e.g. 4); empty: "
                                              "no such reminder. Needs a deadline.")
    remind_every_hours: float | None = Field(None, gt=0, le=24 * 365, description="Remind the approvers who have "
                                             "not answered every this many hours (e.g. 24) until they answer or "
                                             "the deadline passes; empty: no repeated reminder.")
    notify: list[Notice] = Field(default_factory=list, description="Tell each approver, with their own one-click "
                                 "links (a button per outcome): by chat, by email, or both.",
                                 json_schema_extra={"widget": "union"})

    @field_validator("requester", "message", mode="before")
    @classmethod
    def _missing_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("outcomes")
    @classmethod
    def _port_names(cls, value: list[str]) -> list[str]:
        for outcome in value:
            if not _PORT.match(outcome) or outcome == TIMED_OUT:
                raise ValueError(f"{outcome!r} cannot be an outcome: write lowercase letters, digits and _, starting "
                                 f"with a letter (and not {TIMED_OUT}, which the deadline uses)")
        if len(set(value)) != len(value):
            raise ValueError("each outcome must be listed once")
        return value

    @model_validator(mode="after")
    def _needed_fits(self) -> Self:
        if self.rule == "n_of_m" and isinstance(self.approvers, list) and self.approvers \
                and not any("{{" in a for a in self.approvers) and self.needed > len(self.approvers):
            raise ValueError(f"needed is {self.needed}, but only {len(self.approvers)} approvers are listed")
        if self.rule in ("all", "n_of_m", "sequence") and "approve" not in self.outcomes:
            rule = {"all": "All of them must agree", "n_of_m": "A number of them must agree",
                    "sequence": "One after another, in order"}[self.rule]
            raise ValueError(f"the rule '{rule}' counts approvals: keep approve among the outcomes")
        if self.remind_before_hours is not None:
            if self.deadline_hours is None:
                raise ValueError("remind before hours needs a deadline: set deadline hours, or use remind every "
                                 "hours instead")
            if self.remind_before_hours >= self.deadline_hours:
                raise ValueError(f"remind before hours ({self.remind_before_hours:g}) must be less than deadline "
                                 f"hours ({self.deadline_hours:g}), or the reminder would come before the request")
        return self


class Approval(NodeType):
    """Asks people to decide each input item, and waits for them without holding the run in memory: the run is
    `waiting` until the decision, across any number of restarts. Each item becomes one request: a task in the inbox
    of every approver (for `sequence`, of the next approver only), with the title, the message and the fields shown.

    When the request is settled by its rule, the item leaves through the port of the outcome (approve, reject, or the
    custom outcomes), with `approval`: `{"outcome", "decided_by", "responses": [{by, outcome, comment, fields, at}],
    "comment", "fields", "at"}`. The run goes on once every item is settled. Nobody decides twice (the first answer
    on a task wins, the second is told who decided and when), the requester never decides their own request, and
    every answer is in the tamper-evident decision log (`flowboard audit verify`).

    With a deadline, tasks still open at the deadline are handed once to `escalate_to` with a new deadline, or, without
    escalation, the item leaves through `timed_out`.

    `notify` tells each approver by chat (a message per approver, with a button per outcome) and/or by email, each
    with their own signed, expiring one-click links (opening one only shows the request; the press on that page
    decides). The next approver of a sequence and the people a deadline escalates to are told the same way."""

    type = "approval"
    title = "Approval"
    category = Category.logic
    icon = "how_to_reg"
    description = "Ask people to approve or reject each item; the run waits durably for their decision."
    Config = ApprovalConfig
    outputs = ("approve", "reject", TIMED_OUT)
    side_effects = True

    @classmethod
    def retry_safe_with(cls, config: Mapping[str, Any]) -> bool:
        """Asking again for the same run, node and item gives the tasks made before (sdk.Approvals); the chat
        messages and emails of `notify` would go out twice."""
        return not config.get("notify")

    @classmethod
    def output_ports(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        outcomes = config.get("outcomes") if isinstance(config, Mapping) else None
        if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
            outcomes = ["approve", "reject"]
        return (*dict.fromkeys(outcomes), TIMED_OUT)

    async def run(self, ctx: Context, config: ApprovalConfig, inputs: Inputs) -> Outputs | Suspend:
        items = inputs.get("main") or []
        requests = []
        for index, item, cfg in ctx.each(items):
            approvers = _names(cfg.approvers)
            if not approvers:
                raise NodeError("nobody to ask: `approvers` is empty for this item", item_index=index,
                                field="approvers")
            if cfg.rule == "n_of_m" and cfg.needed > len(approvers):
                raise NodeError(f"needed is {cfg.needed}, but there are only {len(approvers)} approvers",
                                item_index=index, field="needed")
            requests.append((index, item, cfg, approvers))
        now = time.time()
        asked = 0
        chats: list[ChatConfig] = []
        emails: list[EmailConfig] = []
        for index, item, cfg, approvers in requests:
            shown = {path: get_path(item, path, None) for path in cfg.show} if cfg.show else dict(item)
            data = {"message": cfg.message, "fields": shown, "form": [f.model_dump() for f in cfg.form],
                    "item": item, "notify": [n.model_dump() for n in cfg.notify]}
            tasks = await ctx.approvals.ask(
                flow_id=ctx.flow_id, run_id=ctx.run_id, node_id=ctx.node_id, item_index=index, title=cfg.title,
                data=data, approvers=approvers, rule=cfg.rule, needed=cfg.needed if cfg.rule == "n_of_m" else 1,
                outcomes=cfg.outcomes, requester=cfg.requester.strip() or None,
                due=now + cfg.deadline_hours * 3600 if cfg.deadline_hours else None,
                escalate_to=_names(cfg.escalate_to), escalate_after=cfg.escalate_hours * 3600,
                remind_before=cfg.remind_before_hours * 3600 if cfg.remind_before_hours else None,
                remind_every=cfg.remind_every_hours * 3600 if cfg.remind_every_hours else None)
            asked += 1
            people = await ctx.approvals.reach([task.assignees[0] for task in tasks]) if cfg.notify else {}
            for task in tasks if cfg.notify else []:
                _notices(ctx, cfg.notify, task, cfg.message, shown, index, chats, emails, people)
        if chats:
            await post_messages(ctx, chats)
        if emails:
            await send_messages(ctx, emails)
        if not asked:
            return {port: [] for port in self.output_ports(config.model_dump())}
        return Suspend(None, data={"approval": {"requests": asked, "title": config.title}})

    @classmethod
    async def notify_tasks(cls, ctx: Context, tasks: list[Any], reminder: bool = False) -> None:
        """Tell the approvers of tasks made after the node ran (the next of a sequence, an escalation), or remind
        them of open tasks (`reminder`), the way the node's `notify` says, from what each task keeps."""
        chats: list[ChatConfig] = []
        emails: list[EmailConfig] = []
        people = await ctx.approvals.reach([task.assignees[0] for task in tasks])
        for task in tasks:
            show = (task.data or {}).get("show") or {}
            notices = [_NOTICE.validate_python(n) for n in show.get("notify") or []]
            if notices:
                _notices(ctx, notices, task, str(show.get("message") or ""), dict(show.get("fields") or {}),
                         task.item_index, chats, emails, people, reminder)
        if chats:
            await post_messages(ctx, chats)
        if emails:
            await send_messages(ctx, emails)

    async def resume(self, ctx: Context, config: ApprovalConfig, inputs: Inputs, payload: Any) -> Outputs:
        items = inputs.get("main") or []
        ports = self.output_ports(config.model_dump())
        out: dict[str, Items] = {port: [] for port in ports}
        decisions = payload.get("decisions", {}) if isinstance(payload, dict) else {}
        for index, item in enumerate(items):
            decision = decisions.get(str(index)) or {"outcome": TIMED_OUT, "decided_by": [], "responses": [],
                                                     "comment": "", "fields": {}, "at": None}
            port = decision.get("outcome") if decision.get("outcome") in out else TIMED_OUT
            result: Item = {**item, "approval": decision}
            out[port].append(result)
        return out


def _notices(ctx: Context, notices: list[Any], task: Any, message: str, shown: dict[str, Any], index: int,
             chats: list[ChatConfig], emails: list[EmailConfig], people: dict[str, list[tuple[str, str | None]]],
             reminder: bool = False) -> None:
    """The messages that tell one task's approver, each with their own links (one button per outcome). A chat
    message goes to the channel; an email to the approver's address (the node's addresses, else the one on the Users
    page), and for a role to everyone holding it who has an address, each with links of their own. A reminder says
    so in its title and first line."""
    recipient = task.assignees[0]
    title = f"Reminder: {task.title}" if reminder else task.title
    if reminder:
        due = f" Please answer before {_when(task.due)}." if task.due else ""
        message = f"This request is still waiting for your answer.{due}" + (f"\n\n{message}" if message else "")
    who = _shown_name(recipient)
    details = {str(k): v if isinstance(v, str | int | float | bool) or v is None else str(v) for k, v in shown.items()}
    styles = {"approve": "primary", "reject": "danger"}
    for notice in notices:
        if isinstance(notice, ChatNotice):
            chats.append(ChatConfig(service=notice.service, credential=notice.credential, title=title,
                                    message=(message + "\n\n" if message else "") + f"For {who}.",
                                    details=details, buttons=[{"title": t, "url": u, "style": styles.get(o, "default")}
                                                              for t, u, o in _links(ctx, task, recipient)]))
            continue
        given = who if "@" in who else notice.addresses.get(who) or notice.addresses.get(recipient)
        targets = [(recipient, given)] if given else [(name, email) for name, email in people.get(recipient, [])
                                                      if email]
        if not targets:
            role = recipient.strip().lower().startswith("role:")
            raise NodeError((f"nobody with the role {who[5:].strip()} has an email address" if role else
                             f"approver {who} has no email address") + ": add one under notify addresses, or on the "
                            "Users page (or write the approver as an address)", item_index=index, field="notify")
        rows = "".join(f"<tr><th align='left'>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in details.items())
        for name, address in targets:
            links = _links(ctx, task, name)
            buttons = " ".join(f"<a href='{_e(u)}' style='display:inline-block;padding:8px 16px;margin:4px;"
                               f"border-radius:4px;background:#1565c0;color:#fff;text-decoration:none'>{_e(t)}</a>"
                               for t, u, _o in links)
            text = "\n".join(f"{t}: {u}" for t, u, _o in links)
            emails.append(EmailConfig(
                credential=notice.credential, sender=notice.sender, to=str(address), subject=title,
                text=(message + "\n\n" if message else "") + text + "\n\nNothing is recorded until you "
                "press a button on the page the link opens.\n",
                html=f"<p>{_e(message)}</p><table>{rows}</table><p>{buttons}</p><p style='color:#666'>Each link is "
                     "yours alone. Nothing is recorded until you press a button on the page it opens.</p>"))


def _shown_name(recipient: str) -> str:
    return recipient[5:] if recipient.lower().startswith("user:") else recipient


def _links(ctx: Context, task: Any, recipient: str) -> list[tuple[str, str, str]]:
    """(button title, the recipient's own link, outcome) for each outcome of the task."""
    return [(o.replace("_", " ").capitalize(), ctx.approvals.link(task.id, recipient, task.due, o), o)
            for o in task.outcomes]


def _when(at: float) -> str:
    """`10:42 (UTC)` today, else `2026-11-28 10:42 (UTC)`: the server cannot know the reader's time zone."""
    moment = datetime.fromtimestamp(at, UTC)
    today = moment.date() == datetime.now(UTC).date()
    return moment.strftime("%H:%M (UTC)" if today else "%Y-%m-%d %H:%M (UTC)")


def _e(value: Any) -> str:
    import html

    return html.escape(str(value), quote=True)


def _names(value: list[str] | str) -> list[str]:
    """Approvers from a list or text: `ada, role:manager` → ['ada', 'role:manager'] (a list may hold lists)."""
    raw: list[Any] = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for entry in raw:
        parts = entry if isinstance(entry, list) else str(entry or "").split(",")
        names.extend(str(p).strip() for p in parts if str(p).strip())
    return list(dict.fromkeys(names))
