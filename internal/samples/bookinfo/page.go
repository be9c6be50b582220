package bookinfo

import "html/template"

// pageData is what the productpage template renders.
type pageData struct {
	User          string
	Product       Product
	DetailsStatus int
	Details       *Details
	DetailsError  string
	ReviewsStatus int
	Reviews       *Reviews
	ReviewsError  string
}

var funcs = template.FuncMap{
	"safe": func(s string) template.HTML { return template.HTML(s) }, // our own constant product text
	"stars": func(n int) []struct{} {
		if n < 0 || n > 5 {
			n = 0
		}
		return make([]struct{}, n)
	},
	"empty": func(n int) []struct{} {
		if n < 0 || n > 5 {
			n = 5
		}
		return make([]struct{}, 5-n)
	},
}

// The markup keeps the strings Istio's tasks grep for: the title, "Book
// Details", "Book Reviews", the error lines, "Reviews served by:", star
// elements with id "glyphicon glyphicon-star" inside a text-<colour>-500
// wrapper and a <font color="…"> as in the older page.
var pageTemplate = template.Must(template.New("productpage").Funcs(funcs).Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
</head>
<body>
<nav>
  <a href="/">BookInfo Sample</a>
  {{- if .User}}
  <span class="user">{{.User}} ( <a href="/logout">sign out</a> )</span>
  {{- else}}
  <form method="post" action="/login" class="login">
    <input type="text" name="username" placeholder="User Name">
    <input type="password" name="passwd" placeholder="Password">
    <button type="submit">Sign in</button>
  </form>
  {{- end}}
</nav>

<div class="summary">
<h3 class="text-center text-primary">{{.Product.Title}}</h3>
<p>Summary: {{safe .Product.DescriptionHTML}}</p>
</div>

<div class="details">
{{- if .Details}}
<h4 class="text-center text-primary">Book Details</h4>
<dl>
<dt>Type:</dt><dd>{{.Details.Type}}</dd>
<dt>Pages:</dt><dd>{{.Details.Pages}}</dd>
<dt>Publisher:</dt><dd>{{.Details.Publisher}}</dd>
<dt>Language:</dt><dd>{{.Details.Language}}</dd>
<dt>ISBN-10:</dt><dd>{{.Details.ISBN10}}</dd>
<dt>ISBN-13:</dt><dd>{{.Details.ISBN13}}</dd>
</dl>
{{- else}}
<h4 class="text-center text-primary">Error fetching product details!</h4>
<p>{{.DetailsError}}</p>
{{- end}}
</div>

<div class="reviews">
{{- with .Reviews}}
<h4 class="text-center text-primary">Book Reviews</h4>
{{- range .Reviews}}
<blockquote>
<p>{{.Text}}</p>
<small>{{.Reviewer}}</small>
{{- with .Rating}}
{{- if .Error}}
<p><i>{{.Error}}</i></p>
{{- else}}
<div class="text-{{.Color}}-500"><font color="{{.Color}}">
{{- range stars .Stars}}<svg id="glyphicon glyphicon-star" class="star-filled" width="16" height="16"><polygon points="8,1 10,6 15,6 11,9 13,15 8,11 3,15 5,9 1,6 6,6"/></svg>{{end -}}
{{- range empty .Stars}}<svg id="glyphicon glyphicon-star-empty" class="star-empty" width="16" height="16"><polygon points="8,1 10,6 15,6 11,9 13,15 8,11 3,15 5,9 1,6 6,6" fill="none" stroke="currentColor"/></svg>{{end -}}
</font></div>
{{- end}}
{{- end}}
</blockquote>
{{- end}}
<dl><dt>Reviews served by:</dt><dd><u>{{.PodName}}</u></dd></dl>
{{- else}}
<h4 class="text-center text-primary">Error fetching product reviews!</h4>
<p>{{.ReviewsError}}</p>
{{- end}}
</div>
</body>
</html>
`))

var indexTemplate = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Simple Bookstore App</title></head>
<body>
<h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>
<p>productpage calls details and reviews; reviews v2 and v3 call ratings.</p>
<p><a href="/productpage?u=normal">Normal user</a></p>
<p><a href="/productpage?u=test">Test user</a></p>
</body>
</html>
`))

var loginTemplate = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>Simple Bookstore App</title></head>
<body>
<form method="post" action="/login">
  <input type="text" name="username" placeholder="User Name">
  <input type="password" name="passwd" placeholder="Password">
  <button type="submit">Sign in</button>
</form>
</body>
</html>
`))
