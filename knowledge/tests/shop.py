"""Small, realistic knowledge bases: an online clothing shop's help pages, in English,
Chinese and Japanese."""

# ruff: noqa: RUF001 (Chinese and Japanese are written with fullwidth punctuation)

from __future__ import annotations

DOCUMENTS = {
    "Shipping": """
We ship to every country in the European Union, the United Kingdom, Switzerland, Norway, the
United States and Canada. Orders placed before 2 pm (Berlin time) on a working day leave our
warehouse the same day.

Standard delivery takes 2 to 4 working days within Germany and 3 to 7 working days to the rest
of the European Union. Express delivery arrives the next working day in Germany and within 2
working days elsewhere in the EU. Deliveries to the United States and Canada take 5 to 10
working days and may be subject to import duties, which the recipient pays.

Standard shipping is free for orders over 50 euros; below that it costs 4.90 euros. Express
shipping costs 12.90 euros. As soon as your parcel leaves the warehouse you receive an email
with a tracking number and a link to follow the parcel with the carrier.
""",
    "Returns and refunds": """
You can return any unworn item within 30 days of delivery. Start a return from the Orders page
of your account: print the prepaid return label and drop the parcel at any DHL point. Returns
from Germany are free; from other countries the label costs 6.95 euros, deducted from the refund.

Once the warehouse has checked your return, we refund the money to the original payment method
within 5 working days. Bank transfers can take a further 2 to 3 days to appear on your
statement. Items bought on sale with a discount of more than 50 percent are final sale and
cannot be returned.

Swimwear and underwear can only be returned with the hygiene seal intact.
""",
    "Payment methods": """
We accept Visa, Mastercard and American Express credit cards, PayPal, Apple Pay, Google Pay and
Klarna. With Klarna you can pay in three interest-free instalments or within 30 days of
delivery. Your card is charged when the order ships, not when you place it.

All payments are processed securely; we never see or store your full card number. If a payment
is declined, check the billing address and try again, or choose another payment method.
Gift cards can be combined with any payment method at checkout.
""",
    "Size guide": """
Our clothes follow European sizing. Tops and dresses run true to size; if you are between two
sizes, we recommend the larger one for a relaxed fit. Jeans are cut slim: order one size up if
you prefer a looser leg.

To find your size, measure your chest at the fullest point, your natural waist and your hips,
and compare with the measurement table on each product page. Shoe sizes are EU sizes; the
product page lists the matching UK and US sizes and the insole length in centimetres.
""",
    "Store locations and opening hours": """
Our flagship store is at Torstrasse 115 in Berlin Mitte and opens Monday to Saturday from 10 am
to 8 pm. The Hamburg store on Neuer Wall 40 opens Monday to Saturday from 10 am to 7 pm. Both
stores are closed on Sundays and public holidays.

You can pick up online orders in either store free of charge: choose click and collect at
checkout and bring the pickup code from your confirmation email.
""",
    "Warranty and repairs": """
All our products carry a two-year warranty against manufacturing defects. Broken zips, seams
that come undone and faulty buttons are repaired free of charge, or the item is replaced if it
cannot be repaired. Normal wear and tear, and damage from washing against the care label, are
not covered.

To make a warranty claim, email a photo of the defect and your order number to
care@example-shop.com. Leather goods can be re-waxed and re-stitched in our Berlin workshop for
a small fee even after the warranty ends.
""",
    "Loyalty programme": """
Members of our loyalty club earn one point for every euro spent online or in our stores. Every
200 points become a 10 euro voucher, sent by email and valid for twelve months. Members also get
early access to sales and free express shipping on their birthday month orders.

Joining is free: create an account and tick the loyalty club box in your profile. Points expire
two years after they were earned.
""",
    "Contact": """
Our customer service team answers by email at hello@example-shop.com and by phone on
+49 30 1234567, Monday to Friday from 9 am to 6 pm. Messages sent on Instagram or Facebook
are answered within one working day. For questions about an existing order, please have your
order number ready.
""",
}

# A customer's question, and the document whose passage must come first. These share
# keywords with the answer, which is what the default hashing embedder matches on.
QUERIES = [
    ("How long does delivery take to the United States?", "Shipping"),
    ("How much does shipping cost?", "Shipping"),
    ("Where is my parcel? I need the tracking number", "Shipping"),
    ("Can I return a dress I don't like?", "Returns and refunds"),
    ("When will I get my refund?", "Returns and refunds"),
    ("Do you take PayPal or Apple Pay?", "Payment methods"),
    ("Can I pay in instalments with Klarna?", "Payment methods"),
    ("Which size should I order for jeans?", "Size guide"),
    ("What are the opening hours of the Hamburg store?", "Store locations and opening hours"),
    ("My zip broke after two months, will you repair it?", "Warranty and repairs"),
    ("How do loyalty points work?", "Loyalty programme"),
    ("What is your phone number?", "Contact"),
]

# Paraphrases without a shared keyword: the hashing embedder misses these, a semantic
# embedder (all-MiniLM-L6-v2) does not.
SEMANTIC_QUERIES = [
    ("How many days until my package arrives in Spain?", "Shipping"),
    ("Is there a shop in Berlin I can visit?", "Store locations and opening hours"),
    ("My jacket fell apart, can you fix it?", "Warranty and repairs"),
    ("How do I reach a human?", "Contact"),
]

# The same kind of shop, written in Chinese and in Japanese: scripts without spaces between
# words, which the hashing embedder indexes by characters and character pairs.
CHINESE_DOCUMENTS = {
    "配送与运费": """
我们在中国大陆全境发货。工作日下午4点前付款的订单当天发货，一般2到4天送达，偏远地区需要5到7天。
订单满99元包邮，不满99元收取运费10元。发货后您会收到快递单号，可以随时查询物流信息。
""",
    "退货与退款": """
收到商品之日起7天内，未穿着、吊牌完好的商品可以申请无理由退货。请在订单页面提交退货申请并寄回商品。
仓库验收后，我们会在3个工作日内将货款原路退回。特价商品不支持退换。
""",
    "支付方式": """
我们支持支付宝、微信支付、银联卡和信用卡付款。也可以使用花呗分期，最多分12期免息。
付款失败时，请检查银行卡余额或更换支付方式。
""",
    "尺码指南": """
我们的衣服采用中国标准尺码。如果您介于两个尺码之间，建议选择大一号。
每个商品页面都有详细的尺码表，请测量胸围、腰围和臀围后对照选择。
""",
    "门店与营业时间": """
我们的旗舰店位于上海市静安区南京西路1266号，营业时间为每天上午10点到晚上10点，节假日正常营业。
网上订单可以选择到店自提，免运费。
""",
    "保修与维修": """
所有商品享受一年质保。拉链损坏、开线、纽扣脱落等质量问题可以免费维修；无法维修的，我们为您换新。
""",
}

CHINESE_QUERIES = [
    ("运费多少钱？", "配送与运费"),
    ("订单什么时候发货？", "配送与运费"),
    ("怎么退货？", "退货与退款"),
    ("退款多久能到账？", "退货与退款"),
    ("可以用微信支付吗？", "支付方式"),
    ("我应该选哪个尺码？", "尺码指南"),
    ("你们的门店几点开门？", "门店与营业时间"),
    ("拉链坏了能修吗？", "保修与维修"),
]

JAPANESE_DOCUMENTS = {
    "配送について": """
ご注文から2〜4営業日でお届けします。5,000円以上のご注文は送料無料です。
5,000円未満の場合、送料は全国一律550円です。発送後に追跡番号をメールでお知らせします。
""",
    "返品・交換": """
商品到着後30日以内であれば、未使用の商品に限り返品・交換を承ります。
マイページの注文履歴から返品をお申し込みください。
返金は商品の確認後、5営業日以内に元のお支払い方法へ行います。
""",
    "お支払い方法": """
クレジットカード（Visa、Mastercard、JCB、American Express）、PayPay、コンビニ払い、代金引換をご利用いただけます。
代金引換の手数料は330円です。
""",
    "サイズについて": """
各商品ページにサイズ表を掲載しています。サイズに迷った場合は、大きめのサイズをおすすめします。
""",
    "店舗と営業時間": """
東京・渋谷店は毎日11時から20時まで営業しています。年末年始は休業いたします。
オンラインでご注文の商品を店舗で受け取ることもできます。
""",
}

JAPANESE_QUERIES = [
    ("送料はいくらですか？", "配送について"),
    ("追跡番号はどこで確認できますか", "配送について"),
    ("返品できますか？", "返品・交換"),
    ("返金はいつになりますか？", "返品・交換"),
    ("代引きの手数料はいくらですか", "お支払い方法"),
    ("サイズ表はどこにありますか", "サイズについて"),
    ("渋谷店の営業時間を教えてください", "店舗と営業時間"),
]
