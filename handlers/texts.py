"""Fixed Chinese texts the bot sends, kept together so wording is reviewed in one place."""

STATE_NAMES = {
    "submitted": "待受理",
    "accepted": "已受理，待商家加入",
    "mediating": "调解中",
    "proposal": "待双方确认方案",
    "settled": "调解成功",
    "terminated": "终止调解",
    "closed": "已办结",
}

WELCOME = (
    "您好，这里是临淄区市场监督管理局消费维权服务。\n"
    "直接发送文字描述您遇到的消费纠纷，即可开始投诉；发现违法行为可以举报，有问题也可以直接问。\n"
    "回复“查询”查看您的工单进度；投诉过程中回复“取消”可以放弃。"
)

CONSUMER_HELP = WELCOME

NO_TICKETS = "您还没有投诉记录。直接发送文字描述您遇到的问题即可开始投诉。"

TEXT_FIRST = "请先用文字简单描述您遇到的问题，图片可以在之后作为证据发送。"

UNSUPPORTED = "暂时只能处理文字和图片消息，请用文字描述。"

BUSY = "系统正在处理您的上一条消息，请稍后再发一次。"

SORRY = "抱歉，系统出了点问题，这条消息没有处理成功，请稍后再发一次。"

INVITE_UNKNOWN = "邀请码无效或已过期，请向调解员核对。"

INTAKE_EXPIRED = "您上次的投诉登记超过{hours:g}小时没有完成，已经作废。"

# --- issue 6: triage of the first message ---------------------------------------------------------

KIND_NAMES = {"complaint": "投诉", "report": "举报", "both": "投诉", "consult": "咨询"}
ROUTED_NAMES = {"category": "按分类", "station": "按商家所在镇街", "intake": "待受理人员确认"}

INTAKE_OPENING = {
    "complaint": "收到，我们来登记您的投诉。\n",
    "both": "收到，我们来登记您的投诉；您反映的违法线索会另作举报登记，分别处理。\n",
    "report": "收到，我们来登记您的举报。举报人信息严格保密。\n",
    "consult": "收到您的咨询。\n",
}

FAQ_ANSWER = "【常见问题】{answer}\n\n如果问题没有解决，直接描述您遇到的情况即可开始投诉。"

OUT_OF_SCOPE = (
    "您反映的问题不属于市场监管部门的职责范围，我们无法受理，请您联系【{agency}】。{contact}\n"
    "如果其中还有商品质量、价格、消费纠纷等问题，可以单独描述，我们再为您登记。"
)

OUTSIDE_DISTRICT = (
    "商家位于{place}，不在临淄区，按规定由商家所在地的市场监管部门处理（{agency}），本局不能受理调解。\n"
    "{contact}。"
)

SUPPLEMENT_FORWARDED = "已将您的补充说明转给工单 {no} 的处理人员。如果这是另一件事，请回复“新投诉”重新登记。"

CREATED = {
    "complaint": ("投诉已登记，工单号：{no}\n已转交【{unit}】处理，"
                  "工作人员将在{hours}小时内（{due}前）响应。"),
    "report": ("举报已登记，工单号：{no}\n已转交【{unit}】核查，举报人信息严格保密，不会告知被举报的商家。"
               "工作人员将在{hours}小时内（{due}前）响应，核查结果会告知您。"),
    "consult": "咨询已登记，工单号：{no}\n【{unit}】的工作人员将在{hours}小时内（{due}前）联系您答复。",
}
CREATED_ALSO = {
    "complaint": "投诉另行登记，工单号：{no}，已转交【{unit}】处理。",
    "report": ("您反映的违法线索已另作举报登记，工单号：{no}，由【{unit}】核查，与调解分别处理；"
               "举报人信息严格保密。"),
    "consult": "咨询另行登记，工单号：{no}。",
}
DUPLICATE_JOINED = ("您对【{merchant}】的同一问题已有{what}工单 {no}（{state}）正在处理，"
                    "这次的内容已补充到该工单，不再重复登记。")
DUPLICATE_TO_STAFF = "【同一消费者再次反映，已并入 {no}】{facts}"

NEW_TICKET_HEAD = {
    "complaint": "新工单 {no}【投诉】",
    "report": "新工单 {no}【举报】（举报人信息保密，不邀请商家调解）",
    "consult": "新工单 {no}【咨询】",
}
NEW_TICKET_TAIL = {
    "complaint": "请在 {due} 前响应，回复 /take {no} 受理。",
    "report": "请在 {due} 前响应，回复 /take {no} 受理，核查后 /close {no} 写明结果。",
    "consult": "请在 {due} 前电话答复，回复 /take {no} 受理，答复后 /close {no} 写明答复。",
}


def routing_note(router, plan, unit_name) -> str:
    """One line for staff: why the ticket is where it is (candidates, matched words)."""
    def label(cid: str) -> str:
        try:
            return router.category(cid).label
        except KeyError:
            return cid

    cands = "；".join(f"{label(c)} {s:g}" for c, s in plan.candidates) or "无"
    hits = "、".join(plan.hits) or "无"
    if plan.routed == "intake":
        head = f"【待确认分派】把握不足，进入受理队列。候选：{cands}"
    elif plan.routed == "station":
        head = f"分类：{label(plan.category)}（{cands}）→ 商家所在地 {plan.place} → {unit_name(plan.unit)}"
    else:
        head = f"分类：{label(plan.category)}（{cands}）"
    return f"{head}｜命中：{hits}" + ("｜紧急：特种设备" if plan.urgent else "")
