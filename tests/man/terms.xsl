<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!--
  What a DocBook page documents: one line "ELEMENT TEXT" for every element
  inside a varlistentry term (function, varname, constant, literal, option,
  command, ...), and for every function of a funcsynopsis "prototype NAME"
  and "signature NAME DECLARATION".
  Parameter section: only the refsect1 with that title (default: all).
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:param name="section" select="''"/>

  <xsl:template match="/">
    <xsl:for-each select="//varlistentry/term//*[$section = '' or ancestor::refsect1[1]/title = $section]">
      <xsl:value-of select="concat(local-name(), ' ', normalize-space(.), '&#10;')"/>
    </xsl:for-each>
    <xsl:if test="$section = ''">
      <xsl:for-each select="//funcprototype">
        <xsl:value-of select="concat('prototype ', normalize-space(funcdef/function), '&#10;')"/>
        <xsl:value-of select="concat('signature ', normalize-space(funcdef/function), ' ', normalize-space(funcdef), '(')"/>
        <xsl:for-each select="paramdef">
          <xsl:if test="position() > 1">, </xsl:if>
          <xsl:value-of select="normalize-space(.)"/>
        </xsl:for-each>
        <xsl:if test="void">void</xsl:if>
        <xsl:text>)&#10;</xsl:text>
      </xsl:for-each>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
