from django.http import HttpResponse
from django.shortcuts import redirect, render

from .models import Note


def index(request):
    if request.method == "POST":
        text = request.POST.get("text", "").strip()
        if text:
            Note.objects.create(text=text[:200])
        return redirect("index")
    return render(request, "notes/index.html", {"notes": Note.objects.all()[:50], "count": Note.objects.count()})


def health(request):
    return HttpResponse("ok\n", content_type="text/plain")
