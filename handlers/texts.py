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
    "直接发送文字描述您遇到的消费纠纷，即可开始投诉；\n"
    "回复“查询”查看您的工单进度；投诉过程中回复“取消”可以放弃。"
)

CONSUMER_HELP = WELCOME

NO_TICKETS = "您还没有投诉记录。直接发送文字描述您遇到的问题即可开始投诉。"

TEXT_FIRST = "请先用文字简单描述您遇到的问题，图片可以在之后作为证据发送。"

UNSUPPORTED = "暂时只能处理文字和图片消息，请用文字描述。"

BUSY = "系统正在处理您的上一条消息，请稍后再发一次。"

SORRY = "抱歉，系统出了点问题，您的消息已记录，请稍后再试。"

INVITE_UNKNOWN = "邀请码无效或已过期，请向调解员核对。"

INTAKE_EXPIRED = "您上次的投诉登记超过{hours:g}小时没有完成，已经作废。"
